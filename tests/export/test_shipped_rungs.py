"""The rung scoring assumes for each layer (compress.plan.shipped_rung) is the one the
export stores it at (export.precision.request_from_plan)."""

from __future__ import annotations

import pytest

from autocompress.compress.plan import (
    OP_KINDS,
    WEIGHT_PRECISIONS,
    CompressionPlan,
    GroupPlan,
    QuantConfig,
    shipped_rung,
)
from autocompress.export.precision import PLAN_OP_TYPES, request_from_plan, to_export_precision


@pytest.mark.parametrize("weights", WEIGHT_PRECISIONS)
def test_every_layer_is_scored_at_the_rung_the_export_stores_it_at(weights: str) -> None:
    assert shipped_rung(weights) == to_export_precision(weights)[0]
    for kind in OP_KINDS:
        for override in WEIGHT_PRECISIONS:
            quant = QuantConfig(weights, "int8", {kind: override})
            request = request_from_plan(CompressionPlan({"dec": GroupPlan(quant=quant)}), "dec")
            types = set(PLAN_OP_TYPES[kind])
            if types & set(request.int8_op_types):
                stored = "int8"
            elif types & set(request.keep_op_types):
                stored = "fp32"
            else:
                stored = request.precision
            assert shipped_rung(override, shipped_rung(weights)) == stored, (weights, kind, override)


@pytest.mark.parametrize("weights", WEIGHT_PRECISIONS)
def test_every_override_is_rounded_and_projected_at_the_rung_the_export_stores_it_at(weights: str) -> None:
    """Overrides below their group's rung were scored and projected at their own precision
    (stored with the group), those above at theirs (kept at fp32)."""
    from autocompress.compress.fake_quant import scored_weight_precision
    from autocompress.score.precision import weight_bits_for
    from autocompress.score.voice_cost import precisions_from_plan

    plan_kind = {"linear": "matmul", "conv": "conv", "conv_transpose": "conv_transpose"}
    for kind in OP_KINDS:
        for override in WEIGHT_PRECISIONS:
            plan = CompressionPlan({"dec": GroupPlan(quant=QuantConfig(weights, "fp32", {kind: override}))})
            stored = shipped_rung(override, shipped_rung(weights))
            scored = scored_weight_precision(override, weights)
            assert shipped_rung(scored) == stored, (weights, kind, override)
            if stored != shipped_rung(override):
                assert scored == stored, (weights, kind, override)
            bits = weight_bits_for("dec.layer.weight", plan_kind[kind], precisions_from_plan(plan)[0])
            if stored.startswith("int"):  # projected at integer bits that round to the stored rung
                assert bits is not None and shipped_rung(f"int{bits}") == stored, (weights, kind, override)
            else:  # a float: no integer bits (32 where kept at fp32 above an integer group)
                assert bits is None or bits > 8, (weights, kind, override)
                if stored == "fp32" != shipped_rung(weights):
                    assert bits == 32, (weights, kind, override)
