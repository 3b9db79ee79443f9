"""Real low-precision execution: int8 weight-only Linear, casts, mixed-precision voices."""

from __future__ import annotations

import torch
from compress_helpers import run_group, sovits_inputs
from torch import nn

from autocompress.compress import (
    CompressionPlan,
    GroupPlan,
    Int8WeightOnlyLinear,
    QuantConfig,
    compress,
    int8_weight_only_,
    lower_precision_,
    seed_recipe,
)


def test_int8_weight_only_linear_matches_its_dequantized_weight() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 32))
    x = torch.randn(3, 5, 64)
    with torch.no_grad():
        reference = model(x)
    int8_weight_only_(model)
    assert isinstance(model[0], Int8WeightOnlyLinear) and model[0].weight_int8.dtype == torch.int8
    layer = model[2]
    with torch.no_grad():
        got = model(x)
        hidden = torch.relu(model[0](x))
        exact = torch.nn.functional.linear(hidden, layer.dequantized_weight(), layer.bias)
    assert torch.allclose(layer(hidden), exact, atol=1e-4)
    err = float((got - reference).norm() / reference.norm())
    assert 0 < err < 0.02
    assert sum(b.numel() for b in model.buffers() if b.dtype == torch.int8) == 64 * 96 + 96 * 32


def test_lowered_voice_runs_mixed_precisions(tiny_voice) -> None:  # noqa: ANN001
    plan = seed_recipe()
    simulated = compress(tiny_voice, plan)
    x = sovits_inputs(simulated.sovits.config)
    with torch.no_grad():
        want_dec = simulated.sovits.dec(x["z"], g=x["ge"])
        want_gpt = run_group(simulated.gpt, "gpt")
    lowered = lower_precision_(simulated, plan)
    assert lowered.sovits.dec.conv_pre.weight.dtype == torch.float16
    assert any(isinstance(m, Int8WeightOnlyLinear) for m in lowered.gpt.modules())
    assert lowered.sovits.ref_enc.fc.fc.weight.dtype == torch.float16
    with torch.no_grad():
        got_dec = lowered.sovits.dec(x["z"], g=x["ge"])  # fp32 in, fp16 inside, fp32 out
        got_gpt = run_group(lowered.gpt, "gpt")
    assert got_dec.dtype == torch.float32
    assert float((got_dec - want_dec).abs().max()) < 1e-2
    # the simulation also rounds the int8 layers' inputs to int8 (as the export ships them); the
    # lowered kernel takes float inputs, so they differ by that rounding (the kernel itself is
    # exact: test_int8_weight_only_linear_matches_its_dequantized_weight)
    assert float((got_gpt - want_gpt).abs().max() / want_gpt.abs().max()) < 5e-2


def test_bf16_gpt_generates(tiny_gpt) -> None:  # noqa: ANN001
    plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig(weights="bf16", activations="bf16"))})
    simulated = compress(tiny_gpt, plan)
    want = run_group(simulated, "gpt")
    gpt = lower_precision_(compress(tiny_gpt, plan), plan)
    assert gpt.ar_predict_layer.weight.dtype == torch.bfloat16
    got = run_group(gpt, "gpt").float()  # the same weights, now computed in bf16
    assert float((got - want).norm() / want.norm()) < 2e-2
    phones = torch.randint(1, 300, (1, 6), generator=torch.Generator().manual_seed(0))
    tokens = gpt.generate(phones, torch.zeros(1, 1024, 6), None, top_k=1, max_new_tokens=12)
    assert tokens.shape[0] == 1 and 1 <= tokens.shape[1] <= 12
    reference = tiny_gpt.generate(phones, torch.zeros(1, 1024, 6), None, top_k=1, max_new_tokens=12)
    assert torch.equal(tokens[0, :2], reference[0, :2])  # greedy choices survive bf16 at first


def test_lowered_int8_style_encoder_runs_on_its_transposed_input(tiny_voice) -> None:  # noqa: ANN001
    plan = CompressionPlan({"ref_enc": GroupPlan(quant=QuantConfig(weights="int8"))})
    simulated = compress(tiny_voice, plan)
    x = sovits_inputs(simulated.sovits.config)
    with torch.no_grad():
        want = simulated.sovits.style(x["spec"])
        got = lower_precision_(simulated, plan).sovits.style(x["spec"])  # the int8 kernel needs dense rows
    assert float((got - want).norm() / want.norm()) < 0.02


def test_an_int8_linear_override_in_an_fp16_group_is_timed_as_the_fp16_layer_it_ships_as(tiny_voice) -> None:  # noqa: ANN001
    """The export stores an override below its float group with the group: the CPU timing ran
    such ref_enc linears as int8 weight-only kernels, a layer no bundle has."""
    quant = QuantConfig(weights="fp16", activations="fp32", op_weights={"linear": "int8"})
    plan = CompressionPlan({"ref_enc": GroupPlan(quant=quant)})
    lowered = lower_precision_(compress(tiny_voice, plan), plan)
    ref_enc = lowered.sovits.ref_enc
    assert not any(isinstance(m, Int8WeightOnlyLinear) for m in ref_enc.modules())
    assert ref_enc.fc.fc.weight.dtype == torch.float16  # the whole group runs in fp16, as its graph
