"""An integer graph rounding to the scored student's int8 ranges is judged against the scored model."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from export_helpers import (
    _root,
    calibrated_student,
    int8_gpt_and_decoder,
    make_inputs,
    shared_voice,
    stripped_export,
)

from autocompress.compress.fake_quant import strip_fake_quant_
from autocompress.exceptions import ConfigError, ExportError
from autocompress.export import ParityBounds, VoiceExport
from autocompress.export import bundle as bundle_module
from autocompress.export.bundle import voice_activation_ranges
from autocompress.export.parity import E2E_FLOOR_DB, GROUP_FLOOR_DB, SCORED_FLOOR_DB
from autocompress.export.references import graph_outputs, graph_views, plain_copy, reference_runs, scored_copy

PRECISIONS = {"gpt": "int8", "dec": "int8"}


def _lowest(outputs: list[dict]) -> float:
    return min(math.inf if o["snr_db"] is None else o["snr_db"] for o in outputs)


def _calibrated_student():  # noqa: ANN202
    """The tiny voice with int8 fake quantization on its GPT and decoder, calibrated on other
    utterances than the export's."""
    return calibrated_student(int8_gpt_and_decoder)


@pytest.fixture(scope="module")
def clipping_export():  # noqa: ANN201
    """A student whose int8 decoder was scored with inputs clipped to half their calibrated
    range (far from the plain model, as a real trained decoder's int8 rounding is), exported
    with those ranges; the student saved stripped, as the search saves it."""
    student = _calibrated_student()
    ranges = {k: (v[0] / 2, v[1] / 2) if k.startswith("sovits.dec.") else v for k, v in voice_activation_ranges(student).items()}
    export = stripped_export(student, ranges)
    yield export
    export.close()


def _checks(bundle, graph: str) -> list[dict]:  # noqa: ANN001
    return [c for c in bundle.manifest.checks if c["graph"] == graph]


def test_a_faithful_int8_decoder_ships_though_far_from_the_plain_model(clipping_export) -> None:  # noqa: ANN001
    bundle = clipping_export.bundle(
        None, _root() / "bundle_scored", None, precisions=PRECISIONS, n_samples=1, upstream=False, threads=1
    )
    dec = bundle.manifest.modules["dec"]
    assert (dec.used, dec.fallbacks) == ("int8", ())
    (check,) = _checks(bundle, "dec")
    assert check["reference"] == "scored" and check["passed"]
    assert _lowest(check["outputs"]) >= SCORED_FLOOR_DB["dec"] + 10  # computes what was scored
    assert _lowest(check["outputs_vs_plain"]) < GROUP_FLOOR_DB["dec"]  # which the plain floor would reject
    for check in _checks(bundle, "gpt_prefill") + _checks(bundle, "gpt_decode"):
        assert check["reference"] == "scored" and "top1_agreement_vs_plain" in check
    (e2e,) = _checks(bundle, "end_to_end")
    assert e2e["passed"] and e2e["reference"]["dec"] == "scored" and e2e["reference"]["flow"] == "plain"
    assert e2e["wav_snr_db"] >= E2E_FLOOR_DB["int8"] > e2e["wav_snr_vs_plain_db"]
    notes = {m.name: m.note for m in bundle.manifest.metrics}
    assert "scored torch model" in notes["parity_snr_db_dec"] and "scored model for dec" in notes["e2e_wav_snr_db"]


def test_without_scored_ranges_the_plain_model_judges_as_before(clipping_export) -> None:  # noqa: ANN001
    bounds = ParityBounds(group_floor_db={**GROUP_FLOOR_DB, "dec": 1e9})  # no int8 decoder reaches this
    bundle = clipping_export.bundle(
        None, _root() / "bundle_unscored", None, precisions=PRECISIONS, bounds=bounds, n_samples=1, upstream=False,
        threads=1, activation_ranges={},
    )  # fmt: skip
    assert bundle.manifest.modules["dec"].used == "fp16"
    int8 = [c for c in _checks(bundle, "dec") if c["precision"] == "int8"]
    assert int8[0]["reference"] == "plain" and "outputs_vs_plain" not in int8[0]
    assert "SNR" in int8[0]["reason"] and "scored" not in int8[0]["reason"]
    (e2e,) = _checks(bundle, "end_to_end")
    assert set(e2e["reference"].values()) == {"plain"}


def test_a_graph_that_does_not_compute_the_scored_model_falls_back(clipping_export, monkeypatch) -> None:  # noqa: ANN001
    """The checks' scored model rounds the decoder's inputs to half the ranges the graph takes."""

    def other_ranges(gpt, sovits, ranges, symmetric, inputs_only=()):  # noqa: ANN001, ANN202
        halved = {k: (v[0] / 2, v[1] / 2) if k.startswith("sovits.dec.") else v for k, v in ranges.items()}
        return scored_copy(gpt, sovits, halved, symmetric, inputs_only)

    monkeypatch.setattr(bundle_module, "scored_copy", other_ranges)
    bundle = clipping_export.bundle(
        None, _root() / "bundle_unfaithful", None, precisions=PRECISIONS, n_samples=1, upstream=False, threads=1
    )
    dec = bundle.manifest.modules["dec"]
    assert dec.used == "fp16"
    assert "against the scored model" in dec.fallbacks[0]["reason"]


def test_the_scored_model_computes_what_the_fake_quantized_student_did() -> None:
    student = _calibrated_student()
    ranges = voice_activation_ranges(student)
    refs = reference_runs(student.gpt, student.sovits, make_inputs(1), 4, 1.35, 0.5)
    as_scored = graph_views(student.gpt, student.sovits)
    want = {g: graph_outputs(as_scored[g], refs.cases[g].feeds) for g in ("gpt_prefill", "dec")}
    strip_fake_quant_(student.gpt)
    strip_fake_quant_(student.sovits)
    gpt, sovits = scored_copy(*plain_copy(student.gpt, student.sovits), ranges, symmetric=True)
    rebuilt = graph_views(gpt, sovits)
    for graph, outputs in want.items():
        got = graph_outputs(rebuilt[graph], refs.cases[graph].feeds)
        for w, g in zip(outputs[0], got[0]):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * float(np.abs(w).max()))


def test_ranges_for_layers_without_integer_rounding_are_refused() -> None:
    from autocompress.compress.fake_quant import load_static_ranges_
    from autocompress.exceptions import CompressionError

    gpt = copy.deepcopy(shared_voice().gpt)
    with pytest.raises(CompressionError, match="names no layer with integer input rounding"):
        load_static_ranges_(gpt, {"ar_predict_layer.weight": (-1.0, 1.0)})
    with pytest.raises(ExportError, match="names no weight layer"):
        VoiceExport(shared_voice(), make_inputs(1), activation_ranges={"sovits.dec.nowhere.weight": (-1.0, 1.0)})


def test_faithfulness_floors_are_validated() -> None:
    with pytest.raises(ConfigError, match="scored_floor_db"):
        ParityBounds(scored_floor_db={"dec": float("nan")})
    with pytest.raises(ConfigError, match="no faithfulness floor"):
        ParityBounds(scored_floor_db={}).floor("dec", "int8", scored=True)


def test_layers_kept_at_fp32_are_float_in_the_scored_model_too(clipping_export) -> None:  # noqa: ANN001
    bundle = clipping_export.bundle(
        None, _root() / "bundle_scored_keep", None, precisions=PRECISIONS, keep_fp32={"dec": ["conv_post"]},
        n_samples=1, upstream=False, threads=1,
    )  # fmt: skip
    (check,) = _checks(bundle, "dec")
    assert check["reference"] == "scored" and bundle.manifest.modules["dec"].used == "int8"
    assert _lowest(check["outputs"]) >= SCORED_FLOOR_DB["dec"] + 10
