"""A per-op-kind weight override is scored and projected at the rung the export stores it at:
below its group's rung it is stored with the group, above it is kept at fp32."""

from __future__ import annotations

import pytest
import torch
from compress_helpers import LinearThenConv

from autocompress.compress import CompressionPlan, GroupPlan, QuantConfig, add_fake_quant_
from autocompress.compress.fake_quant import (
    fake_quantize,
    fake_quantize_blocks,
    round_to_float,
    scored_weight_precision,
)
from autocompress.export.precision import request_from_plan
from autocompress.score.precision import deploy_weight, weight_bits_for
from autocompress.score.voice_cost import precisions_from_plan
from autocompress.targets import load_target


def _scored_weights(config: QuantConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the fp32 weights, the weights scoring uses) of a fresh :class:`LinearThenConv` under ``config``."""
    torch.manual_seed(0)
    model = LinearThenConv(40)
    plain = {n: getattr(model, n).weight.detach().clone() for n in ("linear", "conv")}
    add_fake_quant_(model, config)
    with torch.no_grad():
        return plain, {n: getattr(model, n).weight.detach().clone() for n in ("linear", "conv")}


def test_an_override_below_a_float_group_is_scored_and_projected_with_the_group() -> None:
    """The old seed recipe's ref_enc (fp16, linear int8): the export stores the linear as fp16
    with its group, but scoring rounded it to int8 and the projection counted it at 8 bits."""
    config = QuantConfig("fp16", "fp32", {"linear": "int8"})
    plan = CompressionPlan({"ref_enc": GroupPlan(quant=config)})
    assert "linear stored as fp16 with the group (plan asks int8)" in request_from_plan(plan, "ref_enc").notes
    plain, scored = _scored_weights(config)
    assert torch.equal(scored["linear"], round_to_float(plain["linear"], "fp16"))
    assert torch.equal(scored["conv"], round_to_float(plain["conv"], "fp16"))
    bits, _ = precisions_from_plan(plan)
    assert "ref_enc@matmul" not in bits and "ref_enc" not in bits
    assert weight_bits_for("ref_enc.fc.fc.weight", "matmul", bits) is None  # the group's float
    assert deploy_weight(None, "matmul", "fp16", load_target("rtx3060")).storage == "fp16"


def test_an_override_above_an_int8_group_is_scored_and_projected_unquantized() -> None:
    """conv fp16 in an int8 group: the export keeps the convolutions at fp32, but scoring
    rounded them to fp16 and the projection counted 16 bits."""
    config = QuantConfig("int8", "int8", {"conv": "fp16"})
    plan = CompressionPlan({"dec": GroupPlan(quant=config)})
    request = request_from_plan(plan, "dec")
    assert request.precision == "int8" and request.keep_op_types == ("Conv",)
    plain, scored = _scored_weights(config)
    assert torch.equal(scored["conv"], plain["conv"])  # fp32, as kept
    assert not torch.equal(round_to_float(plain["conv"], "fp16"), plain["conv"])  # the test can tell
    assert torch.equal(scored["linear"], fake_quantize(plain["linear"], 8))
    bits, _ = precisions_from_plan(plan)
    assert bits["dec"] == 8 and bits["dec@conv"] == 32
    assert weight_bits_for("dec.conv_pre.weight", "conv", bits) == 32


@pytest.mark.parametrize(
    ("config", "linear", "conv", "bits"),
    [
        # below an integer group: stored (and scored) at the group's rung
        (QuantConfig("int8", "fp32", {"linear": "int3"}), "int8", "int8", {"dec": 8, "dec@matmul": 8}),
        (QuantConfig("int4", "fp32", {"linear": "int2"}), "int4", "int4", {"dec": 4, "dec@matmul": 4}),
        # stored at its own rung: keeps its own grid (5-7 bits in the int8 part of an int4 group)
        (QuantConfig("int4", "fp32", {"conv": "int6"}), "int4", "int6", {"dec": 4, "dec@conv": 6}),
        (QuantConfig("int8", "fp32", {"linear": "int6"}), "int6", "int8", {"dec": 8, "dec@matmul": 6}),
        # above: kept at fp32
        (QuantConfig("int2", "fp32", {"conv": "int4"}), "int2", "fp32", {"dec": 2, "dec@conv": 32}),
        (QuantConfig("int8", "fp32", {"linear": "bf16"}), "fp32", "int8", {"dec": 8, "dec@matmul": 32}),
        # below an fp32 group: stored fp32 with it
        (QuantConfig("fp32", "fp32", {"conv": "int8"}), "fp32", "fp32", {}),
        (QuantConfig("bf16", "bf16", {"conv": "int4"}), "fp16", "fp16", {}),  # bf16 is stored as fp16
    ],
)
def test_each_weight_is_rounded_at_the_rung_the_export_stores_it_at(
    config: QuantConfig, linear: str, conv: str, bits: dict[str, int]
) -> None:
    got = {k: scored_weight_precision(config.weight_precision(k), config.weights) for k in ("linear", "conv")}
    assert got == {"linear": linear, "conv": conv}
    plain, scored = _scored_weights(config)
    for name, precision in got.items():
        w = plain[name]
        if precision == "fp32":
            want = w
        elif precision in ("fp16", "bf16"):
            want = round_to_float(w, precision)
        elif name == "linear" and int(precision[3:]) <= 4:
            want = fake_quantize_blocks(w, int(precision[3:]))
        else:
            want = fake_quantize(w, int(precision[3:]))
        assert torch.equal(scored[name], want), (config, name)
    assert precisions_from_plan(CompressionPlan({"dec": GroupPlan(quant=config)}))[0] == bits
