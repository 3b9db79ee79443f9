"""The release floor on every sentence: a student that fails one sentence in ten is not released
on its means (a silent sentence, a run-on past the teacher's end, one that stops early)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autocompress.exceptions import ConfigError
from autocompress.score.metric import measured
from autocompress.score.quality import (
    QualityReport,
    ReleaseFloor,
    SentenceFigures,
    build_reference,
    compare_audio,
)

from _speech import espeak, needs_espeak

TEXTS = ("The red boat is here.", "A different sentence, spoken by the same synthetic voice today.", "Short and clear.")


@pytest.fixture(scope="module")
def spoken():
    """Three espeak sentences and the teacher reference (MOS and speaker) built from them."""
    clips = [espeak(t)[0] for t in TEXTS]
    sr = espeak(TEXTS[2])[1]
    return clips, sr, build_reference(clips, sr, mos=True, speaker=True)


@needs_espeak
def test_one_silent_sentence_among_good_ones_fails_though_the_means_pass(spoken):
    clips, sr, reference = spoken
    means_only = ReleaseFloor(min_mos=1.0, min_speaker_cos=0.6)  # the means of 2 good, 1 silent pass these
    report = compare_audio(reference, [clips[0], clips[1], np.zeros_like(clips[2])], sr, means_only)
    assert report.get("speaker_cos").value >= 0.6
    assert not report.passes_floor and report.floor_reason == "sentence 3 of 3 silent"
    assert [s.silent for s in report.sentences] == [False, False, True]


@needs_espeak
def test_a_run_on_past_the_teachers_end_fails_naming_the_sentence_and_ratio(spoken):
    """A student that speaks the sentence, then another, kept its mean MOS and voice: it passed."""
    clips, sr, reference = spoken
    run_on = np.concatenate([clips[0], clips[1]])
    report = compare_audio(reference, [run_on, clips[1], clips[2]], sr)
    ratio = run_on.size / clips[0].size
    assert report.get("speaker_cos").value >= 0.85  # the means alone would let it through
    assert not report.passes_floor
    assert report.floor_reason.endswith(
        f"sentence 1 of 3 runs on past the teacher's end: {ratio:.2f}x its duration > 1.50x"
    )
    assert "\n" not in report.floor_reason


@needs_espeak
def test_a_sentence_that_stops_early_fails(spoken):
    clips, sr, reference = spoken
    cut = clips[1][: int(0.4 * clips[1].size)]
    report = compare_audio(reference, [clips[0], cut, clips[2]], sr, ReleaseFloor(min_mos=1.0, min_speaker_cos=0.6))
    assert not report.passes_floor
    assert "sentence 2 of 3 stops early: 0.40x the teacher's duration < 0.60x" in report.floor_reason


@needs_espeak
def test_a_healthy_student_passes_every_sentence(spoken):
    """Slightly requantised and a little longer (trailing silence), as a compressed student speaks."""
    clips, sr, reference = spoken
    pad = np.zeros(int(0.1 * sr), dtype=np.float32)
    healthy = [np.concatenate([np.round(clips[0] * 256) / 256, pad]), np.round(clips[1] * 256) / 256, clips[2]]
    report = compare_audio(reference, healthy, sr)
    assert report.passes_floor, report.floor_reason
    assert all(0.99 < s.length_ratio < 1.2 and not s.silent for s in report.sentences)


def test_near_silence_is_silent_without_the_speaker_encoder(speech):
    """Without the speaker encoder's voice-activity check, a sentence 50 dB down is still silent."""
    x, sr = speech
    reference = build_reference([x, x], sr, mos=False, speaker=False)
    report = compare_audio(reference, [x, x * 10 ** (-50 / 20)], sr)
    assert not report.passes_floor and report.floor_reason.endswith("; sentence 2 of 2 silent")
    assert [s.silent for s in report.sentences] == [False, True]
    assert compare_audio(reference, [x, x * 0.1], sr).sentences[1].silent is False  # only quieter: 20 dB


# Per-sentence figures of a demo search (teacher DistillMOS 1.80, 1.53, 1.87): a healthy student
# and two collapsed ones (trials 6 and 7 of a quick-start search).
HEALTHY = (
    SentenceFigures(1.11, 1.79, 1.80, 0.94), SentenceFigures(0.99, 1.36, 1.53, 0.93),
    SentenceFigures(1.05, 1.63, 1.87, 0.94),
)


def test_the_default_floor_passes_a_healthy_demo_student_on_every_sentence():
    assert ReleaseFloor().check_sentences(HEALTHY) == []


def test_every_per_sentence_floor_that_fails_is_named_on_one_line():
    collapsed = (
        SentenceFigures(0.16, 1.59, 1.80, 0.0, silent=True), SentenceFigures(1.96, 1.35, 1.53, 0.55),
        SentenceFigures(0.20, 1.57, 1.87, 0.0, silent=True),
    )
    assert ReleaseFloor().check_sentences(collapsed) == [
        "sentences 1, 3 of 3 silent",
        "sentence 2 of 3 runs on past the teacher's end: 1.96x its duration > 1.50x",
        "sentence 2 of 3 is not the teacher's voice: speaker cosine 0.55 < 0.75",
    ]
    strong_teacher = (SentenceFigures(1.0, 4.3, 4.4), SentenceFigures(1.0, 2.5, 4.4), SentenceFigures(1.0, 2.1, 4.4))
    assert ReleaseFloor().check_sentences(strong_teacher) == [
        "sentence 3 of 3 MOS 2.10 < 2.80: more than 1.00 under the floor (1 more sentence too)"
    ]
    runs = (SentenceFigures(1.6), SentenceFigures(2.4), SentenceFigures(1.0), SentenceFigures(1.7))
    assert ReleaseFloor().check_sentences(runs) == [
        "sentence 2 of 4 runs on past the teacher's end: 2.40x its duration > 1.50x (2 more sentences too)"
    ]


def test_per_sentence_thresholds_are_configured_and_checked():
    loose = ReleaseFloor.from_dict({"max_length_ratio": 2.0, "min_sentence_speaker_cos": 0.5})
    assert loose.check_sentences((SentenceFigures(1.96, speaker_cos=0.55),)) == []
    assert ReleaseFloor.from_dict(loose.to_dict()) == loose
    old = ReleaseFloor.from_dict({"min_mos": 3.8, "max_drop": 0.3, "min_speaker_cos": 0.85})  # stored before
    assert old == ReleaseFloor()
    for bad in ({"min_length_ratio": 0.0}, {"max_length_ratio": 0.9}, {"min_sentence_speaker_cos": 1.5},
                {"sentence_mos_margin": -1.0}):
        with pytest.raises(ConfigError, match="min_length_ratio"):
            ReleaseFloor(**bad)


def test_reports_round_trip_and_an_old_report_without_sentences_still_loads():
    metrics = (measured("distillmos", 1.6, "MOS", "cpu"), measured("quality", math.nan, "", "cpu"))
    report = QualityReport(metrics, False, "sentence 2 of 2 silent",
                           (SentenceFigures(1.0, 1.6, 1.7, 0.9), SentenceFigures(math.nan, silent=True)))
    back = QualityReport.from_dict(report.to_dict())
    assert back.floor_reason == report.floor_reason and back.metrics[0] == metrics[0]
    assert math.isnan(back.quality) and math.isnan(back.sentences[1].length_ratio) and back.sentences[1].silent
    assert back.sentences[0] == report.sentences[0]
    old = {k: v for k, v in report.to_dict().items() if k != "sentences"}  # as stored before per-sentence figures
    loaded = QualityReport.from_dict(old)
    assert loaded.sentences == () and loaded.get("distillmos").value == 1.6 and not loaded.passes_floor
    with pytest.raises(ConfigError, match="unknown fields"):
        QualityReport.from_dict({**old, "extra": 1})
