"""Which plan precisions each hardware target can ship, and the fallbacks."""

from __future__ import annotations

import pytest

from autocompress.compress import (
    CompressionPlan,
    GroupPlan,
    QuantConfig,
    deployable_targets,
    deployment_problems,
    fallback_precision,
    seed_recipe,
)
from autocompress.targets import load_target


def test_rtx3060_has_no_int4_convolution_and_no_fp8() -> None:
    rtx = load_target("rtx3060")
    assert fallback_precision("int4", "linear", rtx) == "int4"  # W4A16 matmul ships
    assert fallback_precision("int4", "conv", rtx) == "int8"
    assert fallback_precision("int4", "conv_transpose", "rtx3060") == "int8"
    assert fallback_precision("int3", "linear", rtx) == "int4"
    assert fallback_precision("int6", "conv", rtx) == "int8"
    int4 = GroupPlan(quant=QuantConfig(weights="int4"))
    plan = CompressionPlan({"dec": int4, "gpt": int4})
    problems = deployment_problems(plan, rtx)
    assert problems == [
        "dec: int4 conv weights are not deployable on rtx3060 (conv: fp32, fp16, int8)",
        "dec: int4 conv_transpose weights are not deployable on rtx3060 (conv: fp32, fp16, int8)",
    ]
    assert not plan.deployable_on(rtx)
    fixed = plan.with_fallback(rtx)
    assert fixed.deployable_on(rtx)
    assert fixed.group("dec").quant.weights == "int8" and fixed.group("gpt").quant.weights == "int4"


def test_fallback_on_a_cpu_without_fp16_convolutions() -> None:
    cpu = load_target("cpu")
    assert fallback_precision("fp16", "conv", cpu) == "fp32"  # bf16 rounds differently: not a substitute
    assert fallback_precision("int2", "conv", cpu) == "int8"
    plan = seed_recipe()
    assert not plan.deployable_on(cpu)
    fixed = plan.with_fallback(cpu)
    assert fixed.deployable_on(cpu)
    assert fixed.group("dec").quant.weights == "fp32" and fixed.group("dec").quant.activations == "fp32"
    assert fixed.group("gpt").quant.weights == "int8"
    assert fixed.group("ref_enc").quant == QuantConfig()  # fp16 convolutions do not run here


def test_activation_fallback_is_the_nearest_deployable_precision() -> None:
    nano = load_target("jetson-nano")  # fp16 and fp32 only
    assert fallback_precision("int8", "conv", nano) == "fp16"
    plan = CompressionPlan({"dec": GroupPlan(quant=QuantConfig(weights="int8", activations="int8"))})
    fixed = plan.with_fallback(nano)
    assert fixed.group("dec").quant.weights == "fp16"
    assert fixed.group("dec").quant.activations == "fp16"  # as near as the weights, not fp32
    assert fixed.deployable_on(nano)


@pytest.mark.parametrize("name", ["rtx3060", "rtx4090", "t4", "a100"])
def test_seed_recipe_ships_on_gpus_with_fp16_and_int8(name: str) -> None:
    assert seed_recipe().deployable_on(name), deployment_problems(seed_recipe(), name)


def test_deployable_targets_lists_every_target() -> None:
    table = deployable_targets(seed_recipe())
    assert table["rtx3060"] is True and table["cpu"] is False


def test_an_int8_group_that_falls_back_to_fp16_says_and_scores_the_fp16_graph_it_ships(tiny_voice) -> None:  # noqa: ANN001
    """On a target without int8 the fallback gave "gpt fp16 act fp32": scored with fp32 inputs,
    while the export ships the group as an all-fp16 graph (fp16 activations too)."""
    import torch
    from torch import nn

    from autocompress.compress import compress
    from autocompress.compress.fake_quant import round_to_float

    plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig(weights="int8")),  # W8A8 where int8 runs
                            "dec": GroupPlan(quant=QuantConfig(weights="fp32", activations="fp32"))})  # fmt: skip
    fixed = plan.with_fallback("jetson-nano")
    assert fixed.group("gpt").quant == QuantConfig("fp16", "fp16")
    assert fixed.group("dec").quant == QuantConfig()  # nothing fell back: left as it was
    assert fixed.deployable_on("jetson-nano")
    student = compress(tiny_voice, fixed)
    linear = next(m for m in student.gpt.modules() if isinstance(m, nn.Linear))
    x = 3.0 * torch.randn(4, linear.in_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = nn.functional.linear(round_to_float(x, "fp16"), linear.weight, linear.bias)
        assert torch.equal(linear(x), want)


def test_a_v2pro_text_encoder_override_of_its_linear_is_checked_and_kept() -> None:
    """A v2Pro enc_p group also runs a Linear (ge_to512): an undeployable linear override there
    went unflagged, and the fallback dropped it (the linear was scored at the group's precision)."""
    from autocompress.compress.deploy import GROUP_OP_KINDS

    assert "linear" in GROUP_OP_KINDS["enc_p"] and GROUP_OP_KINDS["enc_p"][0] == "conv"
    plan = CompressionPlan({"enc_p": GroupPlan(quant=QuantConfig("int8", op_weights={"linear": "int6"}))})
    assert deployment_problems(plan, "rtx3060") == [
        "enc_p: int6 linear weights are not deployable on rtx3060 (matmul: fp32, fp16, bf16, int8, int4)"
    ]
    kept = CompressionPlan({"enc_p": GroupPlan(quant=QuantConfig("int8", op_weights={"linear": "fp16"}))})
    assert kept.with_fallback("rtx3060").group("enc_p").quant.op_weights == {"linear": "fp16"}
    assert plan.with_fallback("rtx3060").group("enc_p").quant == QuantConfig("int8", "fp16")  # W8A8, fp16 floats
    assert plan.with_fallback("cpu").group("enc_p").quant == QuantConfig("int8", "int8")  # W8A8, fp32 floats


def test_an_integer_group_ships_fp16_float_parts_where_the_target_runs_fp16() -> None:
    """On a GPU target an int8 or int4 group's graph runs its float parts (KV cache, norms,
    attention, weight-only math) in fp16; they were fp32 everywhere, which made int8 project
    larger and slower than fp16 on a GPU. The cpu target keeps fp32."""
    from autocompress.compress.fake_quant import layer_activations
    from autocompress.compress.plan import graph_float

    for weights in ("int8", "int4"):
        plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig(weights))})
        gpu, cpu = plan.with_fallback("rtx3060").group("gpt").quant, plan.with_fallback("cpu").group("gpt").quant
        assert graph_float(gpu.weights, gpu.activations) == "fp16"
        assert graph_float(cpu.weights, cpu.activations) == "fp32"
        assert deployment_problems(CompressionPlan({"gpt": GroupPlan(quant=gpu)}), "rtx3060") == []
    # scored as the graph runs: W8A8 layers read int8; a layer kept at fp32 and a weight-only
    # int4 layer read the fp16 tensors of their graph
    assert layer_activations("fp16", "int8", "int8") == "int8"
    assert layer_activations("fp16", "fp32", "int8") == "fp16"
    assert layer_activations("fp16", "int4", "int4") == "fp16"
    assert layer_activations("int8", "fp32", "int8") == layer_activations("fp32", "int4", "int4") == "fp32"
    assert layer_activations("fp16", "fp32", "fp32") == "fp32"  # an fp32 group's graph stays fp32
    # fp16 float parts on a target without fp16 are named as the problem
    plan = CompressionPlan({"dec": GroupPlan(quant=QuantConfig("int8", "fp16"))})
    assert deployment_problems(plan, "cpu") == [
        "dec: fp16 float parts (conv graph) are not deployable on cpu",
        "dec: fp16 float parts (conv_transpose graph) are not deployable on cpu",
    ]
    assert plan.with_fallback("cpu").group("dec").quant == QuantConfig("int8", "int8")


def test_an_override_stored_with_its_float_group_is_judged_at_the_groups_precision() -> None:
    """An int4 linear override in an fp16 ref_enc ships as fp16 with its group; on a target
    without int4 matmul it was reported as undeployable, a problem no bundle has."""
    nano = load_target("jetson-nano")  # fp16 only
    quant = QuantConfig(weights="fp16", activations="fp16", op_weights={"linear": "int4"})
    assert deployment_problems(CompressionPlan({"ref_enc": GroupPlan(quant=quant)}), nano) == []
    own = QuantConfig(weights="int4", activations="fp16")  # int4 of its own: still a problem
    assert any("int4 linear" in p for p in deployment_problems(CompressionPlan({"ref_enc": GroupPlan(quant=own)}), nano))


def test_bf16_is_judged_and_replaced_as_the_fp16_it_ships() -> None:
    """The export writes bf16 as fp16: the cpu target (no fp16) was told a bf16 GPT deploys, and a
    Turing card (fp16, no bf16) that an fp16 graph's bf16 activations do not."""
    cpu, turing = load_target("cpu"), load_target("rtx2060")
    assert fallback_precision("bf16", "linear", cpu) == "fp32"
    assert fallback_precision("bf16", "linear", turing) == "fp16"
    bf16 = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("bf16", "bf16"))})
    assert deployment_problems(bf16, cpu)[0].startswith("gpt: fp16 linear weights (bf16 ships as fp16) are not deployable")
    assert bf16.deployable_on(turing)
    assert bf16.with_fallback(turing).group("gpt").quant == QuantConfig("fp16", "fp16")
    # fp16 activations in a weight-only int4 group mean fp16 float parts: a CPU cannot run them,
    # and the fallback ships the group's graph in fp32
    int4 = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("int4", "fp16"))})
    assert not int4.deployable_on(load_target("rpi5"))
    assert int4.with_fallback("rpi5").group("gpt").quant == QuantConfig("int4", "fp32")
