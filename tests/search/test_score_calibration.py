"""Scoring rounds a student's int8 inputs to static ranges calibrated as its bundle's are."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autocompress.compress import compress
from autocompress.compress.fake_quant import _HOOK_ATTR
from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.exceptions import CheckpointError
from autocompress.search import scoring
from autocompress.search.cache import CALIBRATION_SENTENCES
from autocompress.search.synth import synthesize


def _score(teacher_and_items, monkeypatch, quant: QuantConfig, symmetric: bool = True):
    """Score a student with ``quant`` on its GPT over four sentences; returns (student, the spy's calls)."""
    teacher, items = teacher_and_items
    plan = CompressionPlan({"gpt": GroupPlan(quant=quant)})
    student = compress(teacher, plan)
    ranges = [m.__dict__[_HOOK_ATTR].state for m in student.gpt.modules() if _HOOK_ATTR in m.__dict__]
    calls = []

    def spy(voice, prompt, sentence, style=None):  # noqa: ANN001, ANN202
        calls.append((sentence, any(r.amax is not None or r.span is not None for r in ranges)))
        return synthesize(voice, prompt, sentence, style)

    monkeypatch.setattr(scoring, "synthesize", spy)
    monkeypatch.setattr(scoring, "compare_audio", lambda reference, audios, sr, floor: len(audios))
    sentences = [items[1], items[2]] * 2  # one more than the export calibrates on
    cache = SimpleNamespace(prompt=items[0], sentences=sentences, style=None, reference=None)
    assert scoring.score_quality(student, plan, cache, symmetric).report == len(sentences)
    return sentences, ranges, calls


def test_int8_inputs_are_calibrated_on_the_export_sentences_before_the_student_speaks(teacher_and_items, monkeypatch):
    sentences, ranges, calls = _score(teacher_and_items, monkeypatch, QuantConfig("int8"))
    assert len(sentences) > CALIBRATION_SENTENCES and ranges
    assert [s for s, _ in calls] == sentences[:CALIBRATION_SENTENCES] + sentences
    assert [static for _, static in calls] == [False] * CALIBRATION_SENTENCES + [True] * len(sentences)
    assert sum(r.amax is not None for r in ranges) >= len(ranges) // 2  # the layers the GPT ran
    assert all(r.amax is None or r.amax > 0 for r in ranges)


@pytest.mark.parametrize("quant", [QuantConfig("fp16", "fp16"), QuantConfig("int4")])
def test_a_student_without_int8_inputs_speaks_each_sentence_once(teacher_and_items, monkeypatch, quant):
    sentences, ranges, calls = _score(teacher_and_items, monkeypatch, quant)
    assert [s for s, _ in calls] == sentences
    assert all(r.amax is None for r in ranges)


def test_a_cpu_target_student_is_scored_with_asymmetric_uint8_ranges(teacher_and_items, monkeypatch):
    """A target running onnxruntime's CPU provider only ships asymmetric u8 activations."""
    from autocompress.targets import load_target

    assert not load_target("cpu").symmetric_int8 and load_target("rtx3060").symmetric_int8
    sentences, ranges, calls = _score(teacher_and_items, monkeypatch, QuantConfig("int8"), symmetric=False)
    assert [static for _, static in calls] == [False] * CALIBRATION_SENTENCES + [True] * len(sentences)
    spans = [r.span for r in ranges if r.span is not None]
    assert spans and all(r.amax is None for r in ranges)
    assert all(low <= high for low, high in spans) and any(low < 0 < high for low, high in spans)


def test_a_students_weights_are_rounded_once_while_it_speaks_not_at_every_decoding_step(teacher_and_items, monkeypatch):
    """Re-rounding every weight at each generated code made scoring a full-size int8 GPT take minutes."""
    from autocompress.compress.fake_quant import FakeQuantWeight, has_fake_quant

    teacher, items = teacher_and_items
    plan = CompressionPlan({g: GroupPlan(quant=QuantConfig("int8")) for g in ("gpt", "dec")})
    student = compress(teacher, plan)
    quantized = sum(
        has_fake_quant(m, name) for model in (student.gpt, student.sovits) for m in model.modules()
        for name in ("weight", "in_proj_weight")
    )
    rounded = []
    forward = FakeQuantWeight.forward
    monkeypatch.setattr(FakeQuantWeight, "forward", lambda self, w: rounded.append(self) or forward(self, w))
    monkeypatch.setattr(scoring, "compare_audio", lambda reference, audios, sr, floor: len(audios))
    cache = SimpleNamespace(prompt=items[0], sentences=[items[1], items[2]], style=None, reference=None)
    assert scoring.score_quality(student, plan, cache).report == 2
    assert quantized > 0 and 0 < len(rounded) <= quantized


def test_a_trial_saves_the_ranges_it_was_scored_with_under_the_names_its_export_reads(
    teacher_and_items, monkeypatch, tmp_path
):
    """The saved student was stripped of its fake quantization, so its bundle calibrated int8
    ranges of its own and did not round as the trial was scored."""
    from autocompress.compress import strip_fake_quant_
    from autocompress.export.bundle import _weight_ranges
    from autocompress.export.references import plain_copy
    from autocompress.compress.fake_quant import voice_activation_ranges as scored_ranges
    from autocompress.search.pipeline import _save_student, load_ranges, load_student

    teacher, items = teacher_and_items
    plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("int8")), "dec": GroupPlan(quant=QuantConfig("int8"))})
    student = compress(teacher, plan)
    monkeypatch.setattr(scoring, "compare_audio", lambda reference, audios, sr, floor: len(audios))
    cache = SimpleNamespace(prompt=items[0], sentences=[items[1], items[2]], style=None, reference=None)
    scoring.score_quality(student, plan, cache, True)
    ranges = scored_ranges(student)
    assert any(k.startswith("gpt.") for k in ranges) and any(k.startswith("sovits.dec.") for k in ranges)
    assert all(low == -high < 0 for low, high in ranges.values())  # symmetric, as the GPU target scored
    strip_fake_quant_(student.gpt)
    strip_fake_quant_(student.sovits)
    assert scored_ranges(student) == {}  # stripping loses them: the student folder has to keep them
    _save_student(student, plan, tmp_path / "trial-0001", ranges)
    assert load_ranges(tmp_path / "trial-0001") == ranges
    rebuilt = load_student(tmp_path / "trial-0001")
    named = {r.name: (r.low, r.high) for r in _weight_ranges(*plain_copy(rebuilt.gpt, rebuilt.sovits), ranges)}
    assert {k: named[k] for k in ranges} == ranges  # every range finds its layer in the graphs' models
    _save_student(student, plan, tmp_path / "trial-0002")
    assert load_ranges(tmp_path / "trial-0002") is None
    (tmp_path / "trial-0002" / "activation_ranges.json").write_text('{"gpt.x": [1]}')
    with pytest.raises(CheckpointError, match="not the student's activation ranges"):
        load_ranges(tmp_path / "trial-0002")


def test_a_trial_records_the_int8_form_it_was_scored_with_and_the_export_takes_it(
    teacher_and_items, monkeypatch, tmp_path
):
    """The export inferred the form from the ranges alone: u8 ranges that happen to be (-a, a)
    were taken for s8, and the bundle rounded (and was checked) otherwise than the trial scored."""
    import json

    from autocompress.export.bundle import _weight_ranges, scored_symmetric
    from autocompress.export.references import plain_copy
    from autocompress.search.pipeline import RANGES_FILE, _save_student, load_ranges

    teacher, _ = teacher_and_items
    plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("int8"))})
    student = compress(teacher, CompressionPlan())
    gpt, sovits = plain_copy(student.gpt, student.sovits)
    layers = [r.name for r in _weight_ranges(gpt, sovits, {}) if r.name.startswith("gpt.")][:2]
    u8 = {layers[0]: (-1.5, 1.5), layers[1]: (-0.25, 0.25)}  # a CPU target's u8 calibration, symmetric by chance
    _save_student(student, plan, tmp_path / "u8", u8, symmetric=False)
    _save_student(student, plan, tmp_path / "s8", u8, symmetric=True)
    loaded = load_ranges(tmp_path / "u8")
    assert loaded == u8 and loaded.symmetric is False and load_ranges(tmp_path / "s8").symmetric is True
    assert json.loads((tmp_path / "u8" / RANGES_FILE).read_text())["int8"] == "u8"
    assert scored_symmetric(loaded) is False and scored_symmetric(load_ranges(tmp_path / "s8")) is True
    assert not any(r.symmetric for r in _weight_ranges(gpt, sovits, loaded))  # the int8 graphs round as u8
    # A file written before the form was recorded: absent means inferred from the ranges, as before.
    (tmp_path / "u8" / RANGES_FILE).write_text(json.dumps({k: list(v) for k, v in u8.items()}))
    old = load_ranges(tmp_path / "u8")
    assert old == u8 and old.symmetric is None and scored_symmetric(old) is True
    (tmp_path / "u8" / RANGES_FILE).write_text(json.dumps({"int8": "s16", "ranges": {}}))
    with pytest.raises(CheckpointError, match="not the student's activation ranges"):
        load_ranges(tmp_path / "u8")


class _Stop(Exception):
    pass


def test_an_export_checks_against_the_int8_form_its_trial_recorded(teacher_and_items, monkeypatch, tmp_path):
    """The bundle's scored reference took u8 ranges symmetric by chance for s8: it was checked
    against a model rounding otherwise than the trial was scored."""
    from autocompress.export import VoiceExport
    from autocompress.export import bundle as bundle_module
    from autocompress.export.references import plain_copy
    from autocompress.search.bundles import synth_input
    from autocompress.search.pipeline import _save_student, load_ranges

    teacher, items = teacher_and_items
    plan = CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("int8"))})
    student = compress(teacher, CompressionPlan())
    gpt, sovits = plain_copy(student.gpt, student.sovits)
    layer = next(r.name for r in bundle_module._weight_ranges(gpt, sovits, {}) if r.name.startswith("gpt."))
    _save_student(student, plan, tmp_path / "trial-0001", {layer: (-1.5, 1.5)}, symmetric=False)
    forms = []
    real = bundle_module._ScoredReference

    def scored_reference(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the reference, then stop
        forms.append(real(*args, **kwargs).scored_form)
        raise _Stop

    monkeypatch.setattr(bundle_module, "_ScoredReference", scored_reference)
    with VoiceExport(student, [synth_input(items[0], items[1])], exporter="legacy", eval_tokens=4,
                     activation_ranges=load_ranges(tmp_path / "trial-0001")) as export:  # fmt: skip
        with pytest.raises(_Stop):
            export.bundle(plan, tmp_path / "bundle", "rtx3060")
        with pytest.raises(_Stop):
            export.bundle(plan, tmp_path / "bundle", "rtx3060", activation_ranges=load_ranges(tmp_path / "trial-0001"))
    assert forms == ["u8", "u8"]
