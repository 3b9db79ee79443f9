"""A group stored at int4 with an int8 part is judged against the scored model as its graph rounds it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from export_helpers import _root, calibrated_student, stripped_export

from autocompress.compress.fake_quant import add_fake_quant_, add_input_rounding_, op_kind
from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.export import bundle as bundle_module
from autocompress.export.bundle import voice_activation_ranges
from autocompress.export.parity import SCORED_FLOOR_DB
from autocompress.export.precision import request_from_plan
from autocompress.export.references import graph_outputs, graph_views, scored_copy
from autocompress.models.gpt_sovits.voice import group_modules

# ref_enc's linears at int4 (MatMulNBits), its convolutions at int8 (what with_fallback makes of
# "ref_enc int4" on a GPU without int4 convolution), int8 activations as the plan asks.
QUANT = QuantConfig("int4", "int8", op_weights={"conv": "int8"})
PLAN = CompressionPlan({"ref_enc": GroupPlan(quant=QUANT)})


def _old_quant(module) -> None:  # noqa: ANN001
    """``QUANT`` as students scored before version 7 had it: every input int8, the int4 linears' too."""
    add_fake_quant_(module, QUANT)
    add_input_rounding_(module, "int8", filter_fn=lambda m, _fqn: op_kind(m) != "conv")


def _student():  # noqa: ANN202
    return calibrated_student(lambda v: [_old_quant(m) for m in group_modules(v.sovits, "ref_enc")])


def test_a_student_scored_now_rounds_only_the_int8_part_as_the_int4_graph_does() -> None:
    """The int4 linears ship weight-only (MatMulNBits, float inputs): a student scored now carries
    int8 ranges for the convolutions only, and its int4 graph computes it as scored."""
    student = calibrated_student(lambda v: [add_fake_quant_(m, QUANT) for m in group_modules(v.sovits, "ref_enc")])
    ranges = voice_activation_ranges(student)
    assert ranges and all(".conv" in k for k in ranges)
    export = stripped_export(student, ranges)
    try:
        scored = bundle_module._ScoredReference(export, ranges, True, None)
        request = request_from_plan(PLAN, "ref_enc")
        int8, low_bit = scored.rounded("ref_enc", "int4", request)
        assert int8 == frozenset(ranges) and not low_bit
        assert scored.as_scored_outputs("ref_enc", "int4", request) is None  # the graph's reference is the model as scored
    finally:
        export.close()


@pytest.fixture(scope="module")
def mixed():  # noqa: ANN201
    """The export of the stripped student, and the fake-quantized student's ref_enc outputs on its feeds."""
    student, as_scored = _student(), _student()  # identical: stripping one leaves the other as scored
    ranges = voice_activation_ranges(student)
    assert any(".conv" not in k for k in ranges) and any(".conv" in k for k in ranges)  # both kinds carry ranges
    export = stripped_export(student, ranges)
    want = graph_outputs(graph_views(as_scored.gpt, as_scored.sovits)["ref_enc"], export.refs.cases["ref_enc"].feeds)
    yield export, ranges, want
    export.close()


def _lowest(outputs: list[dict]) -> float:
    return min(math.inf if o["snr_db"] is None else o["snr_db"] for o in outputs)


def test_the_int4_reference_keeps_low_bit_layers_as_stored_and_the_model_as_scored_is_exact(mixed) -> None:  # noqa: ANN001
    export, ranges, want = mixed
    scored = bundle_module._ScoredReference(export, ranges, True, None)
    request = request_from_plan(PLAN, "ref_enc")
    int8, low_bit = scored.rounded("ref_enc", "int4", request)
    assert int8 and all(".conv" in k for k in int8) and low_bit and not any(".conv" in k for k in low_bit)
    assert scored.rounded("ref_enc", "int8", request) == (int8 | low_bit, frozenset())
    got = scored.as_scored_outputs("ref_enc", "int4", request)
    np.testing.assert_allclose(got[0][0], want[0][0], rtol=1e-5, atol=1e-5 * float(np.abs(want[0][0]).max()))
    # the int4 graph's reference: only the convolutions rounded; the linears keep their int4 weights
    convs_only = graph_views(*scored_copy(export.gpt, export.sovits, {k: ranges[k] for k in int8}, True))["ref_enc"]
    expected = graph_outputs(convs_only, export.refs.cases["ref_enc"].feeds)
    np.testing.assert_array_equal(scored.outputs("ref_enc", "int4", request)[0][0], expected[0][0])


def test_a_faithful_int4_group_with_an_int8_part_ships_at_int4(mixed) -> None:  # noqa: ANN001
    export, _, _ = mixed
    bundle = export.bundle(PLAN, _root() / "bundle_int4_int8", None, n_samples=1, upstream=False, threads=1)
    module = bundle.manifest.modules["ref_enc"]
    assert (module.used, module.fallbacks) == ("int4", ())
    (check,) = [c for c in bundle.manifest.checks if c["graph"] == "ref_enc"]
    assert check["reference"] == "scored" and check["passed"]
    assert _lowest(check["outputs"]) >= SCORED_FLOOR_DB["ref_enc"] + 5
    assert _lowest(check["outputs_vs_scored_form"]) >= SCORED_FLOOR_DB["ref_enc"]


def test_an_int4_group_not_computing_the_scored_model_falls_back_to_the_plain_judged_rung(mixed, monkeypatch) -> None:  # noqa: ANN001
    export, _, _ = mixed

    def halved(gpt, sovits, ranges, symmetric, inputs_only=()):  # noqa: ANN001, ANN202
        return scored_copy(gpt, sovits, {k: (a / 2, b / 2) for k, (a, b) in ranges.items()}, symmetric, inputs_only)

    monkeypatch.setattr(bundle_module, "scored_copy", halved)
    bundle = export.bundle(PLAN, _root() / "bundle_int4_unfaithful", None, n_samples=1, upstream=False, threads=1)
    checks = {c["precision"]: c for c in bundle.manifest.checks if c["graph"] == "ref_enc"}
    assert checks["int4"]["reference"] == "scored" and not checks["int4"]["passed"]
    assert checks["int8"]["reference"] == "scored" and not checks["int8"]["passed"]
    assert checks["fp16"]["reference"] == "plain" and checks["fp16"]["passed"]
    assert bundle.manifest.modules["ref_enc"].used == "fp16"
