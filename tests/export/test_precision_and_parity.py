"""Precision mapping (plan -> export ladder -> target) and the parity rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.exceptions import ConfigError
from autocompress.export import ParityBounds, candidate_precisions, request_from_plan, to_export_precision
from autocompress.export.parity import compare_outputs, judge, snr_db, top1_agreement
from autocompress.targets import load_target


@pytest.mark.parametrize(
    ("plan", "rung"),
    [("fp32", "fp32"), ("fp16", "fp16"), ("bf16", "fp16"), ("int8", "int8"), ("int6", "int8"),
     ("int5", "int8"), ("int4", "int4"), ("int3", "int4"), ("int2", "int2")],
)  # fmt: skip
def test_plan_precisions_round_up_onto_the_ladder(plan: str, rung: str) -> None:
    assert to_export_precision(plan)[0] == rung


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        to_export_precision("fp8")


def test_op_overrides_above_the_group_keep_those_ops_float() -> None:
    plan = CompressionPlan(
        {"dec": GroupPlan(quant=QuantConfig("int4", op_weights={"conv_transpose": "fp16", "conv": "int3"}))}
    )
    request = request_from_plan(plan, "dec")
    assert request.precision == "int4"
    assert request.keep_op_types == ("ConvTranspose",)
    assert request_from_plan(plan, "gpt").precision == "fp32"
    assert request_from_plan(None, "dec").precision == "fp32"


def test_a_fallback_plan_exports_its_int8_convolutions_at_int8() -> None:
    """with_fallback turns "ref_enc int4" into "int4, conv at int8" on rtx3060: scored and shipped so."""
    plan = CompressionPlan({"ref_enc": GroupPlan(quant=QuantConfig("int4"))}).with_fallback(load_target("rtx3060"))
    request = request_from_plan(plan, "ref_enc")
    assert request.precision == "int4" and request.keep_op_types == ()
    assert "Conv" in request.int8_op_types
    assert any("stored as int8" in n for n in request.notes)


def test_targets_skip_rungs_they_cannot_run() -> None:
    cpu, gpu = load_target("cpu"), load_target("rtx3060")
    # CPU: no fp16 anywhere, no int4 convolution.
    assert candidate_precisions("fp16", {"MatMul"}, cpu)[0] == ["fp32"]
    assert candidate_precisions("int4", {"MatMul"}, cpu)[0] == ["int4", "int8", "fp32"]
    rungs, notes = candidate_precisions("int4", {"Conv", "ConvTranspose"}, cpu)
    assert rungs == ["int8", "fp32"] and "int4 skipped" in notes[0]
    # A graph with both kinds needs both deployable.
    assert candidate_precisions("int4", {"Conv", "MatMul"}, gpu)[0] == ["int8", "fp16", "fp32"]
    assert candidate_precisions("int2", {"MatMul"}, None)[0] == ["int2", "int4", "int8", "fp16", "fp32"]


def test_fp32_must_match_elementwise() -> None:
    bounds = ParityBounds()
    ref = [[np.array([1.0, -2.0, 100.0])]]
    close = compare_outputs(["y"], ref, [[np.array([1.00005, -2.0, 100.005])]], bounds)
    far = compare_outputs(["y"], ref, [[np.array([1.001, -2.0, 100.0])]], bounds)
    assert judge("dec", "fp32", close, bounds)[0]
    ok, reason = judge("dec", "fp32", far, bounds)
    assert not ok and "differs" in reason


def test_quantized_graphs_need_their_group_floor() -> None:
    bounds = ParityBounds()
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000)
    noisy = ref + rng.standard_normal(1000) * 10 ** (-15 / 20)  # about 15 dB
    outputs = compare_outputs(["y"], [[ref]], [[noisy]], bounds)
    assert 14 < outputs[0].snr_db < 16
    assert judge("gpt", "int8", outputs, bounds)[0]  # gpt floor 12 dB
    ok, reason = judge("dec", "int4", outputs, bounds)  # decoder floor 18 dB
    assert not ok and "floor 18" in reason
    assert not judge("gpt", "fp16", outputs, bounds)[0]  # fp16 needs 30 dB whatever the group


def test_shape_mismatch_fails_and_helpers() -> None:
    bounds = ParityBounds()
    outputs = compare_outputs(["y"], [[np.zeros(3)]], [[np.zeros(4)]], bounds)
    assert not judge("gpt", "int8", outputs, bounds)[0]
    assert snr_db(1.0, 0.0) == math.inf and snr_db(0.0, 1.0) == -math.inf
    assert top1_agreement(np.eye(4), np.eye(4)[[0, 1, 3, 2]]) == 0.5
    with pytest.raises(ConfigError):
        ParityBounds(fp32_atol=-1.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e200])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_non_finite_outputs_fail_at_every_precision(bad: float, precision: str) -> None:
    bounds = ParityBounds()
    ref = [[np.array([1.0, -2.0, 3.0]), np.ones(2)], [np.array([0.5, 0.5, 0.5]), np.ones(2)]]
    got = [[np.array([1.0, -2.0, 3.0]), np.ones(2)], [np.array([0.5, bad, 0.5]), np.ones(2)]]
    with np.errstate(over="ignore"):
        outputs = compare_outputs(["y", "z"], ref, got, bounds)
    assert outputs[0].snr_db == -math.inf and not outputs[0].within_fp32_tol
    assert outputs[0].to_dict()["snr_db"] is None and outputs[1].snr_db == math.inf
    ok, reason = judge("gpt", precision, outputs, bounds)
    assert not ok and "output y" in reason
    assert "differs by 0 " not in reason


def test_the_same_infinity_on_both_sides_is_a_match() -> None:
    bounds = ParityBounds()
    ref = [[np.array([1.0, -math.inf, 2.0])]]
    outputs = compare_outputs(["y"], ref, [[np.array([1.0, -math.inf, 2.0])]], bounds)
    assert outputs[0].snr_db == math.inf and outputs[0].within_fp32_tol
    assert judge("dec", "fp32", outputs, bounds)[0] and judge("dec", "int8", outputs, bounds)[0]


def test_snr_of_non_finite_powers_is_minus_infinity() -> None:
    assert snr_db(1.0, math.nan) == -math.inf and snr_db(1.0, math.inf) == -math.inf
    assert snr_db(math.nan, 1.0) == -math.inf and snr_db(1e-320, 1e300) == -math.inf
    assert snr_db(100.0, 1.0) == pytest.approx(20.0)


def test_an_integer_graph_with_fp16_float_parts_is_held_to_a_floor_2_db_lower() -> None:
    """A GPU target's int8 graph rounds its norms, residuals and attention to fp16, which the
    scored model keeps fp32: the demo decoder's faithful graph reached 17.6 dB against the scored
    model (floor 17), and others fell back to fp16 for no fault. fp32 float parts keep the floor."""
    from autocompress.export.parity import FP16_FLOATS_MARGIN_DB, SCORED_FLOOR_DB, OutputParity, ParityBounds, judge

    bounds = ParityBounds()
    out = [OutputParity("wav", 0.1, SCORED_FLOOR_DB["dec"] - 1.0, False)]
    assert not judge("dec", "int8", out, bounds, scored=True)[0]
    assert judge("dec", "int8", out, bounds, scored=True, floats="fp16") == (True, "")
    assert bounds.floor("gpt", "int8", scored=True, floats="fp16") == SCORED_FLOOR_DB["gpt"] - FP16_FLOATS_MARGIN_DB
    assert bounds.floor("gpt", "int8", floats="fp16") == bounds.floor("gpt", "int8")  # the quality floor is the plain one's
    far = [OutputParity("wav", 0.1, 14.1, False)]  # the decoder's closest near miss still fails
    assert not judge("dec", "int8", far, bounds, scored=True, floats="fp16")[0]
