"""A trial scored in one int8 form (s8 or u8 activations) exported for a target of the other,
and the end-to-end GPT check of a bundle whose int8 GPT was checked against the scored model."""

from __future__ import annotations

import logging
import math

import numpy as np
import onnx
import pytest
import torch
from export_helpers import _root, calibrated_student, int8_gpt_and_decoder, stripped_export
from onnx import numpy_helper

from autocompress.compress.fake_quant import (
    fake_quantize_activation,
    voice_activation_ranges,
)
from autocompress.export import ParityBounds, VoiceExport
from autocompress.export import bundle as bundle_module
from autocompress.export.bundle import scored_symmetric
from autocompress.export.ort_quant import activation_scale_zero_point
from autocompress.export.parity import SCORED_FLOOR_DB
from autocompress.export.references import greedy_runs
from autocompress.targets import load_target

PRECISIONS = {"gpt": "int8", "dec": "int8"}


def _student_export(symmetric: bool) -> tuple[VoiceExport, dict[str, tuple[float, float]]]:
    """The tiny voice with int8 GPT and decoder calibrated in one form (s8 or u8) on other
    utterances than the export's, saved stripped as the search saves it, and exported."""
    student = calibrated_student(int8_gpt_and_decoder, symmetric)
    ranges = voice_activation_ranges(student)
    return stripped_export(student, ranges), ranges


@pytest.fixture(scope="module")
def s8_export():  # noqa: ANN201
    export, ranges = _student_export(symmetric=True)
    yield export, ranges
    export.close()


@pytest.fixture(scope="module")
def u8_export():  # noqa: ANN201
    export, ranges = _student_export(symmetric=False)
    yield export, ranges
    export.close()


def _lowest(outputs: list[dict]) -> float:
    return min(math.inf if o["snr_db"] is None else o["snr_db"] for o in outputs)


def _checks(bundle, graph: str) -> list[dict]:  # noqa: ANN001
    return [c for c in bundle.manifest.checks if c["graph"] == graph]


def test_the_trials_form_is_read_off_its_ranges(s8_export, u8_export) -> None:  # noqa: ANN001
    assert scored_symmetric(s8_export[1]) and not scored_symmetric(u8_export[1])
    assert not scored_symmetric({})


def test_u8_rounds_s8_ranges_exactly_as_scored() -> None:
    amax = 2.3
    x = torch.linspace(-3.0, 3.0, 6001)  # beyond the range on both sides
    scale, zero = activation_scale_zero_point(-amax, amax, symmetric=False, scored_symmetric=True)
    assert zero.dtype == np.uint8 and int(zero) == 128
    q = np.clip(np.rint(x.numpy() / scale) + int(zero), 0, 255)
    onnx_rounded = ((q - int(zero)) * scale).astype(np.float32)
    np.testing.assert_allclose(onnx_rounded, fake_quantize_activation(x, "int8", amax).numpy(), rtol=0, atol=1e-6)


def test_s8_scored_trial_for_a_u8_target_rounds_as_scored(s8_export, caplog) -> None:  # noqa: ANN001
    export, ranges = s8_export
    out = _root() / "bundle_s8_for_u8"
    with caplog.at_level(logging.WARNING, logger="autocompress.export.bundle"):
        bundle = export.bundle(
            None, out, load_target("rpi5"), precisions=PRECISIONS, n_samples=1, upstream=False, threads=1
        )
    assert bundle.manifest.modules["dec"].used == "int8"
    # every rounded decoder input takes the scored s8 step (amax / 127) at zero point 128
    steps = {np.float32(max(abs(lo), abs(hi)) / 127) for k, (lo, hi) in ranges.items() if k.startswith("sovits.dec.")}
    graph = onnx.load(str(out / "dec.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    quantize = [n for n in graph.graph.node if n.op_type == "QuantizeLinear" and n.input[1] in inits]
    activations = [n for n in quantize if inits[n.input[2]].dtype == np.uint8]
    assert activations
    for node in activations:
        assert int(inits[node.input[2]]) == 128 and np.float32(inits[node.input[1]]) in steps
    (check,) = _checks(bundle, "dec")
    assert check["reference"] == "scored" and check["scored_form"] == "s8" and "outputs_vs_scored_form" not in check
    lines = [r.getMessage() for r in caplog.records if "scored with s8" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "exactly as scored" in lines[0]
    assert any("scored with s8" in n for n in bundle.manifest.modules["dec"].notes)


def test_u8_scored_trial_for_an_s8_target_is_held_to_the_model_as_scored(u8_export, caplog) -> None:  # noqa: ANN001
    export, _ = u8_export
    with caplog.at_level(logging.WARNING, logger="autocompress.export.bundle"):
        bundle = export.bundle(None, _root() / "bundle_u8_for_s8", None, precisions=PRECISIONS, n_samples=1,
                               upstream=False, threads=1)  # fmt: skip
    (check,) = _checks(bundle, "dec")
    assert bundle.manifest.modules["dec"].used == "int8" and check["scored_form"] == "u8"
    faithful, as_scored = _lowest(check["outputs"]), _lowest(check["outputs_vs_scored_form"])
    assert as_scored >= SCORED_FLOOR_DB["dec"] and faithful > as_scored + 20  # the s8 graph rounds as its reference
    lines = [r.getMessage() for r in caplog.records if "scored with u8" in r.getMessage()]
    assert len(lines) == 1 and "not as scored" in lines[0]
    # a floor between the two: faithful to the s8 reference, too far from the model as scored
    floor = (faithful + as_scored) / 2
    bounds = ParityBounds(scored_floor_db={**SCORED_FLOOR_DB, "dec": floor})
    bundle = export.bundle(None, _root() / "bundle_u8_for_s8_strict", None, precisions=PRECISIONS, bounds=bounds,
                           n_samples=1, upstream=False, threads=1)  # fmt: skip
    dec = bundle.manifest.modules["dec"]
    assert dec.used == "fp16" and "against the model as scored (u8" in dec.fallbacks[0]["reason"]


def test_a_u8_trial_for_a_u8_target_says_nothing(u8_export, caplog) -> None:  # noqa: ANN001
    export, _ = u8_export
    with caplog.at_level(logging.WARNING, logger="autocompress.export.bundle"):
        bundle = export.bundle(None, _root() / "bundle_u8_for_u8", load_target("rpi5"), precisions=PRECISIONS,
                               n_samples=1, upstream=False, threads=1)  # fmt: skip
    assert not [r for r in caplog.records if "this target's form" in r.getMessage()]
    (check,) = _checks(bundle, "dec")
    assert check["scored_form"] == "u8" and "outputs_vs_scored_form" not in check


def test_an_int8_gpts_codes_are_compared_with_the_scored_gpts(s8_export) -> None:  # noqa: ANN001
    export, _ = s8_export
    bundle = export.bundle(None, _root() / "bundle_scored_gpt", None, precisions=PRECISIONS, n_samples=1,
                           upstream=False, threads=1)  # fmt: skip
    (e2e,) = _checks(bundle, "end_to_end")
    assert e2e["passed"] and e2e["reference"]["gpt"] == "scored"
    assert e2e["gpt_greedy_logit_snr_db"] >= SCORED_FLOOR_DB["gpt"]
    assert {"gpt_greedy_prefix_match_vs_plain", "gpt_greedy_exact_vs_plain"} <= set(e2e)
    metrics = {m.name: m for m in bundle.manifest.metrics}
    assert "scored GPT" in metrics["gpt_greedy_prefix_match"].note
    assert "gpt_greedy_prefix_match_vs_plain" in metrics


def test_an_int8_gpt_far_from_the_scored_gpt_along_its_decoding_falls_back(s8_export, monkeypatch) -> None:  # noqa: ANN001
    """The end-to-end check's scored GPT is made the plain one: the graphs, faithful to the
    scored model on their few checked steps, are not to this one along the whole decoding."""
    export, _ = s8_export

    def plain_runs(gpt, inputs, max_new_tokens, repetition_penalty):  # noqa: ANN001, ANN202
        return greedy_runs(export.gpt, inputs, max_new_tokens, repetition_penalty)

    monkeypatch.setattr(bundle_module, "greedy_runs", plain_runs)
    # faithful graphs reach float rounding (130+ dB here), an int8 GPT is 35-40 dB from the plain one
    bounds = ParityBounds(scored_floor_db={**SCORED_FLOOR_DB, "gpt": 80.0})
    bundle = export.bundle(None, _root() / "bundle_scored_gpt_far", None, precisions=PRECISIONS, bounds=bounds,
                           n_samples=1, upstream=False, threads=1)  # fmt: skip
    assert all(c["passed"] for c in _checks(bundle, "gpt_decode") if c["precision"] == "int8")
    gpt = bundle.manifest.modules["gpt"]
    assert gpt.used == "fp16" and "GPT logits along its greedy decoding" in gpt.fallbacks[0]["reason"]
