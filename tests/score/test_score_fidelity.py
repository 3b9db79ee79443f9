"""Fidelity metrics: perfect for identical audio, worse with every degradation, in order of severity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from autocompress.score import dtw_path, fidelity_metrics
from autocompress.score.fidelity import ANALYSIS_SR, MCD_CONST, mel_cepstral_distortion, to_analysis_rate


def add_noise(x: np.ndarray, sr: int, snr_db: float) -> np.ndarray:
    noise = np.random.default_rng(0).standard_normal(x.size)
    return x + noise * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))


def low_pass(x: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    return sosfiltfilt(butter(8, cutoff_hz, fs=sr, output="sos"), x)


def requantise(x: np.ndarray, sr: int, bits: int) -> np.ndarray:
    q = 2 ** (bits - 1)
    return np.round(x * q) / q


DEGRADATIONS = {
    "noise": (add_noise, (30, 20, 10)),
    "low_pass": (low_pass, (8000, 4000, 2000)),
    "requantise": (requantise, (12, 8, 6)),
}


def values(x: np.ndarray, y: np.ndarray, sr: int) -> dict[str, float]:
    """The distances (lower is better); STOI is tested in test_score_intelligibility."""
    return {m.name: m.value for m in fidelity_metrics(x, y, sr) if m.name != "stoi"}


def test_identical_audio_is_perfect(speech):
    x, sr = speech
    assert values(x, x.copy(), sr) == {"log_mel_l1": 0.0, "mrstft": 0.0, "mcd_db": 0.0}
    stoi = {m.name: m.value for m in fidelity_metrics(x, x.copy(), sr)}["stoi"]
    assert stoi == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_every_metric_worsens_with_severity(speech, kind):
    x, sr = speech
    x = x.astype(np.float64)
    fn, levels = DEGRADATIONS[kind]
    rows = [values(x, x, sr)] + [values(x, fn(x, sr, level), sr) for level in levels]
    for name in rows[0]:
        series = [r[name] for r in rows]
        assert all(a < b for a, b in zip(series, series[1:])), f"{kind}: {name} not increasing: {series}"


def test_length_mismatch_is_aligned_by_dtw(speech):
    x, sr = speech
    x = x.astype(np.float64)
    # The same utterance 4 % slower (a student with drifting durations) scores far better than
    # other audio of the same length, although the frames no longer line up one to one.
    slower = np.interp(np.arange(0, x.size - 1, 0.96), np.arange(x.size), x)
    other = np.roll(x, x.size // 3)[: slower.size] + 0.0
    same = values(x, slower, sr)
    different = values(x, other, sr)
    for name in same:
        assert same[name] < 0.7 * different[name], name


def test_dtw_path_follows_the_cheap_cells():
    cost = np.ones((4, 6))
    for i, j in [(0, 0), (1, 1), (1, 2), (2, 3), (3, 4), (3, 5)]:
        cost[i, j] = 0.0
    i, j = dtw_path(cost)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 0), (1, 1), (1, 2), (2, 3), (3, 4), (3, 5)]


def test_mcd_constant_is_the_standard_one():
    assert MCD_CONST == pytest.approx(10 / np.log(10) * np.sqrt(2))


@pytest.mark.parametrize("gain", [0.9, 0.5, 2.0])
def test_mcd_ignores_a_change_of_level_alone(speech, gain):
    # c0 (the energy) is excluded, so a student that is only quieter or louder is not penalised;
    # a floor shared by both signals clipped the quieter one in more bands (0.9x: 2.4 dB).
    x, sr = speech
    x = x.astype(np.float64)
    assert mel_cepstral_distortion(x, gain * x, sr).value == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n", [100, 300])
def test_mcd_of_a_clip_shorter_than_half_a_window(speech, n):
    # Its level frames once disagreed in count with its mel frames (IndexError).
    x, sr = speech
    clip = to_analysis_rate(x, sr)[8000 : 8000 + n]
    assert mel_cepstral_distortion(clip, clip, ANALYSIS_SR).value == 0.0
    assert mel_cepstral_distortion(clip, 0.5 * clip[: n // 2], ANALYSIS_SR).value > 0.0


def test_mcd_sees_sound_the_student_adds_where_the_teacher_is_silent(speech):
    # A GPT that runs on after the sentence: DTW pairs the extra student frames with the teacher's
    # final silence, and counting teacher speech only scored a hiss tail 0 dB (a perfect MCD term).
    x, sr = speech
    x = x.astype(np.float64)
    hiss = 0.01 * np.abs(x).max() * np.random.default_rng(0).standard_normal(2 * sr)
    assert mel_cepstral_distortion(x, np.concatenate([x, hiss]), sr).value > 3.0
    assert mel_cepstral_distortion(x, np.concatenate([x, np.zeros(2 * sr)]), sr).value == pytest.approx(0.0, abs=1e-6)
    # Noise in the pauses too only raises the figure: everywhere is worse than on speech alone.
    noise = np.random.default_rng(1).standard_normal(x.size) * np.sqrt(np.mean(x**2) / 10**2)
    on_speech = np.convolve(np.abs(x) > 0.02 * np.abs(x).max(), np.ones(sr // 30), "same") > 0
    everywhere = mel_cepstral_distortion(x, x + noise, sr).value
    assert everywhere > mel_cepstral_distortion(x, x + noise * on_speech, sr).value
