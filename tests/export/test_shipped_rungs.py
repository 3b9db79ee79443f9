"""The rung scoring assumes for each layer (compress.fake_quant.shipped_rung) is the one the
export stores it at (export.precision.request_from_plan)."""

from __future__ import annotations

import pytest

from autocompress.compress.fake_quant import shipped_rung
from autocompress.compress.plan import OP_KINDS, WEIGHT_PRECISIONS, CompressionPlan, GroupPlan, QuantConfig
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
