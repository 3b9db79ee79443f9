"""Speaker similarity, MOS proxies (few and small: slow on a CPU), composite score, release floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autocompress.exceptions import ConfigError, DataError, ScoringError
from autocompress.score import (
    ReleaseFloor,
    build_reference,
    compare_audio,
    composite_quality,
    get_scorer,
    speaker_similarity,
)
from autocompress.score.mos import SilentAudioError

from _speech import espeak, needs_espeak


@needs_espeak
def test_a_different_speaker_lowers_speaker_similarity():
    teacher, sr = espeak()
    reference = build_reference([teacher], sr, mos=False, speaker=True)
    same_voice, _ = espeak()  # deterministic: the same audio again
    other_text, _ = espeak("A different sentence, spoken by the same synthetic voice today.")
    other_voice, _ = espeak(voice="en-us+f3", pitch=85)
    cos = {
        name: speaker_similarity(reference.embeddings[0], audio, sr)
        for name, audio in (("same", same_voice), ("other_text", other_text), ("other_voice", other_voice))
    }
    assert cos["same"] == pytest.approx(1.0, abs=1e-6)
    assert cos["other_voice"] < cos["other_text"] < cos["same"]
    assert cos["other_voice"] < 0.85


@needs_espeak
def test_a_silent_sentence_scores_speaker_zero_alone_and_the_floor_says_so():
    """One sentence without a voiced part made the whole trial's speaker cosine 0 (the other
    sentences' similarity was thrown away), or, with no fallback, failed the trial."""
    first, sr = espeak()
    second, _ = espeak("A different sentence, spoken by the same synthetic voice today.")
    reference = build_reference([first, second], sr, mos=True, speaker=True)
    floor = ReleaseFloor(min_mos=1.0)  # any MOS passes: only the voice can fail
    half = compare_audio(reference, [first, np.zeros_like(second)], sr, floor)
    assert half.get("speaker_cos").value == pytest.approx(0.5, abs=1e-6)  # 1.0 and 0.0
    assert half.get("speaker_cos").note == "1 of 2 sentences silent, scored 0"
    assert not half.passes_floor and "not the teacher's voice" in half.floor_reason
    whole = compare_audio(reference, [first, second], sr, floor)
    assert whole.get("speaker_cos").value == pytest.approx(1.0, abs=1e-6) and whole.get("speaker_cos").note == ""
    assert whole.get("quality").value > half.get("quality").value


@needs_espeak
def test_distillmos_prefers_clean_speech_and_is_cached_per_process():
    x, sr = espeak("Short and clear.")
    scorer = get_scorer("distillmos")
    assert get_scorer("distillmos") is scorer
    clean = scorer.score(x, sr)["distillmos"]
    assert scorer.score(x, sr)["distillmos"] == clean  # deterministic
    crushed = scorer.score(np.round(x * 8) / 8, sr)["distillmos"]  # 4-bit requantisation
    assert 1.0 <= crushed < clean <= 5.0


@needs_espeak
def test_dnsmos_reports_ovrl_and_p808_and_noise_lowers_them():
    x, sr = espeak("Short and clear.")
    noisy = np.clip(x + 0.3 * np.random.default_rng(0).standard_normal(x.size).astype(np.float32), -1, 1)
    clean = get_scorer("dnsmos").score(x, sr)
    bad = get_scorer("dnsmos").score(noisy, sr)
    assert set(clean) == {"dnsmos_ovrl", "dnsmos_p808"}
    assert bad["dnsmos_ovrl"] < clean["dnsmos_ovrl"] and bad["dnsmos_p808"] < clean["dnsmos_p808"]


def test_compare_audio_without_models_reports_fidelity_and_composite(speech):
    x, sr = speech
    reference = build_reference([x], sr, mos=False, speaker=False)
    report = compare_audio(reference, [x], sr)
    names = {m.name for m in report.metrics}
    assert names == {"log_mel_l1", "mrstft", "mcd_db", "stoi", "quality"}
    assert report.quality == 1.0  # identical audio: MCD 0, the only term present
    worse = compare_audio(reference, [np.round(x * 32) / 32], sr)
    assert worse.quality < 1.0
    assert all(m.kind == "measured" for m in report.metrics)
    assert not report.passes_floor and "no MOS" in report.floor_reason
    with pytest.raises(Exception):
        compare_audio(reference, [x, x], sr)


def test_teacher_reference_round_trips_through_a_weights_only_file(tmp_path, speech):
    import torch

    from autocompress.score import TeacherReference

    x, sr = speech
    ref = TeacherReference(sr, (x, x[:100]), mos=(4.1, 3.9), dnsmos=((3.0, 3.5), (2.9, 3.4)),
                           embeddings=(np.ones(256) / 16,) * 2)
    torch.save(ref.to_dict(), tmp_path / "ref.pt")
    back = TeacherReference.from_dict(torch.load(tmp_path / "ref.pt", weights_only=True))
    assert back.sr == sr and back.mos == ref.mos and back.dnsmos == ref.dnsmos
    assert np.array_equal(back.audios[1], x[:100]) and back.embeddings[0].shape == (256,)
    assert back.mean_mos == pytest.approx(4.0)


def test_composite_definition():
    perfect = {"distillmos": 5.0, "speaker_cos": 1.0, "mcd_db": 0.0}
    assert composite_quality(perfect) == 1.0
    half = composite_quality({"distillmos": 3.0, "speaker_cos": 0.875, "mcd_db": 20.0 * math.log(2)})
    assert half == pytest.approx(0.5)  # each term at a half
    assert composite_quality({"distillmos": 1.0, "speaker_cos": 0.5, "mcd_db": math.inf}) == 0.0
    assert composite_quality({"speaker_cos": 0.875}) == pytest.approx(0.5)  # renormalised weights
    # a scorer that failed (NaN) is not a poor score: the composite is NaN, and the trial fails
    assert math.isnan(composite_quality({"distillmos": math.nan, "speaker_cos": 1.0, "mcd_db": 0.0}))
    assert math.isnan(composite_quality({}))
    better = dict(perfect, distillmos=4.5)
    assert composite_quality(better) < composite_quality(perfect)


def test_release_floor_absolute_and_relative_to_a_weak_teacher():
    floor = ReleaseFloor()
    assert floor.check(3.9, 4.4)[0]
    assert not floor.check(3.7, 4.4)[0]
    assert floor.check(3.3, 3.5)[0]  # teacher below 3.8: a drop of 0.2 is allowed
    ok, reason = floor.check(3.1, 3.5)
    assert not ok and "teacher 3.50" in reason
    strict = ReleaseFloor.from_dict({"min_mos": 4.0, "max_drop": 0.1})
    assert not strict.check(3.9, 4.5)[0] and not strict.check(3.3, 3.5)[0]
    assert ReleaseFloor.from_dict(strict.to_dict()) == strict
    with pytest.raises(ConfigError):
        ReleaseFloor(min_mos=6.0)
    with pytest.raises(ConfigError):
        ReleaseFloor.from_dict({"min_mos": 4.0, "drop": 0.1})


def test_release_floor_wants_the_teachers_voice_whatever_the_mos():
    """A silent or garbled student of a low-MOS teacher passes a MOS-drop rule; not this one."""
    floor = ReleaseFloor()
    assert floor.check(1.5, 1.7)[0]  # within 0.3 of a weak teacher, speaker not measured
    ok, reason = floor.check(1.5, 1.7, speaker_cos=0.0)  # a silent student scores 0
    assert not ok and "speaker cosine 0.00 < 0.85" in reason
    assert not floor.check(4.5, 4.6, speaker_cos=0.70)[0]  # another voice, however clean
    assert not floor.check(4.5, 4.6, speaker_cos=float("nan"))[0]
    assert floor.check(1.6, 1.7, speaker_cos=0.96)[0]
    loose = ReleaseFloor.from_dict({"min_speaker_cos": 0.5})
    assert loose.check(1.5, 1.7, speaker_cos=0.7)[0] and ReleaseFloor.from_dict(loose.to_dict()) == loose
    with pytest.raises(ConfigError):
        ReleaseFloor(min_speaker_cos=1.5)


def test_release_floor_names_every_floor_that_fails():
    """Only the speaker floor was named when both failed: loosening it then revealed the MOS one."""
    ok, reason = ReleaseFloor().check(2.0, 4.4, speaker_cos=0.5)
    assert not ok and reason == "speaker cosine 0.50 < 0.85: not the teacher's voice; MOS 2.00 < 3.80"
    ok, reason = ReleaseFloor().check(1.0, 1.7, speaker_cos=0.5)
    assert not ok and reason.endswith("; MOS 1.00 < teacher 1.70 - 0.30")
    assert ReleaseFloor().check(4.0, 4.4, speaker_cos=0.5)[1] == "speaker cosine 0.50 < 0.85: not the teacher's voice"


def test_a_broken_student_is_named_with_its_sentence(speech):
    """NaN samples failed the trial with 'waveform contains NaN or infinite samples': whose, which?"""
    x, sr = speech
    reference = build_reference([x, x], sr, mos=False, speaker=False)
    broken = x.copy()
    broken[:3] = np.nan
    with pytest.raises(DataError, match="student's audio of evaluation sentence 2 of 2 has 3 NaN"):
        compare_audio(reference, [x, broken], sr)


def test_digital_silence_has_no_speaker_embedding_and_warns_nothing():
    """Resemblyzer scaled all-zero audio by infinity: NaN samples and numpy warnings in the log."""
    import warnings

    import resemblyzer  # noqa: F401 - imported outside the strict block below

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SilentAudioError):
            get_scorer("speaker").embed(np.zeros(16000, dtype=np.float32), 16000)


def test_dnsmos_refuses_empty_audio():
    """speechmos doubles a short clip until it is 9 s long, so an empty one never returned."""
    with pytest.raises(ScoringError, match="empty"):
        get_scorer("dnsmos").score(np.zeros(0, dtype=np.float32), 16000)


def test_the_mcd_term_ranks_students_far_from_the_teacher():
    """The term reached 0 at 10 dB: a demo search's students (22-68 dB) all scored 0 on it,
    so the composite could not tell a close student from a broken one by fidelity."""
    terms = [composite_quality({"mcd_db": d}) for d in (0.0, 5.0, 22.5, 35.4, 68.2)]
    assert terms[0] == 1.0 and all(a > b > 0 for a, b in zip(terms, terms[1:]))
