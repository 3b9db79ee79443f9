"""scripts/demo_mos_gap.py: the signal surgery behind VOICE.md section 19."""

from __future__ import annotations


import numpy as np
import pytest
from _scripts import load_script

@pytest.fixture(scope="module")
def gap():
    return load_script("demo_mos_gap")


def _tone_and_noise(rate: int, seconds: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    return tone, noise


def _band_energy(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / rate)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_swap_stft_keeps_a_signal_whole_and_takes_each_part_from_its_own_side(gap):
    tone, noise = _tone_and_noise(gap.RATE)
    assert np.allclose(gap.swap_stft(tone, tone), tone, atol=1e-4)
    mixed = gap.swap_stft(tone, noise)  # the tone's magnitude with the noise's phase
    assert not np.allclose(mixed, tone, atol=1e-2)
    # the magnitude decides where the energy is: still at the tone's two frequencies
    assert _band_energy(mixed, gap.RATE, 150, 300) > 20 * _band_energy(mixed, gap.RATE, 1000, 3000)


def test_low_pass_removes_the_high_band_only(gap):
    tone, _ = _tone_and_noise(gap.RATE)
    out = gap.low_pass(tone, gap.LOW_BAND_HZ)
    assert _band_energy(out, gap.RATE, 4500, 8000) < 1e-6 * _band_energy(tone, gap.RATE, 4500, 8000)
    assert _band_energy(out, gap.RATE, 150, 300) == pytest.approx(_band_energy(tone, gap.RATE, 150, 300), rel=1e-3)


def test_griffin_lim_keeps_length_and_magnitude(gap):
    tone, _ = _tone_and_noise(gap.RATE)
    out = gap.griffin_lim(tone, iters=16)
    assert out.shape == tone.shape
    assert _band_energy(out, gap.RATE, 150, 300) > 10 * _band_energy(out, gap.RATE, 1000, 3000)


def test_decoded_pairs_are_the_shipped_held_out_items_aligned(gap):
    from autocompress.models.gpt_sovits.demo import demo_voice_paths

    pairs = gap.decoded_pairs()
    assert [p[0] for p in pairs] == demo_voice_paths().eval_names
    for _, source, output in pairs[:3]:
        assert source.shape == output.shape and source.size > gap.RATE  # over a second each
        assert np.isfinite(output).all() and np.sqrt(np.mean(output**2)) > 0.01
