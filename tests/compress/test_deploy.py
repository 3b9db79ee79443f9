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
    assert fixed.group("ref_enc").quant.weight_precision("linear") == "int8"


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
