"""Audio front end: spectrogram conventions, Slaney mel filterbank, log-mel."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.audio import (
    mel_filterbank,
    mel_spectrogram,
    spec_to_mel,
    spectrogram,
    spectrogram_raw,
)

SMALL = dict(n_fft=64, hop_length=16, win_length=64)


def _numpy_spectrogram(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Independent reference: reflect pad, periodic Hann, direct DFT, sqrt(|X|^2 + 1e-8)."""
    pad = (n_fft - hop) // 2
    y = np.pad(y.astype(np.float64), (pad, pad), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic
    frames = (len(y) - n_fft) // hop + 1
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    basis = np.exp(-2j * np.pi * k * n / n_fft)  # [F, n_fft]
    out = np.empty((n_fft // 2 + 1, frames))
    for t in range(frames):
        spectrum = basis @ (y[t * hop : t * hop + n_fft] * window)
        out[:, t] = np.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-8)
    return out


def test_spectrogram_raw_matches_direct_dft() -> None:
    rng = np.random.default_rng(0)
    y = rng.standard_normal(301).astype(np.float32) * 0.3
    got = spectrogram_raw(torch.from_numpy(y), **SMALL)[0].numpy()
    want = _numpy_spectrogram(y, 64, 16)
    assert got.shape == want.shape == (33, 301 // 16)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [640 * 7, 640 * 7 + 1, 640 * 8 - 1])
def test_frame_count_is_samples_over_hop(n: int) -> None:
    spec = spectrogram(torch.zeros(n))
    assert spec.shape == (1, 1025, n // 640)


def test_silence_gives_the_epsilon_floor() -> None:
    spec = spectrogram_raw(torch.zeros(1, 2000), **SMALL)
    torch.testing.assert_close(spec, torch.full_like(spec, 1e-4))


def test_input_shapes_agree() -> None:
    y = torch.randn(2, 900) * 0.2
    batch = spectrogram(y, **SMALL)
    assert batch.shape[0] == 2
    torch.testing.assert_close(spectrogram(y[1], **SMALL), batch[1:])
    torch.testing.assert_close(spectrogram(y[1:], **SMALL), batch[1:])


@pytest.mark.parametrize(("peak", "divisor"), [(0.5, 1.0), (1.0, 1.0), (1.5, 1.5), (3.0, 2.0)])
def test_peak_normalisation_on_a_copy(peak: float, divisor: float) -> None:
    y = torch.randn(1000)
    y = y / y.abs().max() * peak
    before = y.clone()
    got = spectrogram(y, **SMALL)
    torch.testing.assert_close(y, before, rtol=0, atol=0)  # caller's tensor untouched
    torch.testing.assert_close(got, spectrogram_raw(before / divisor, **SMALL))


def test_peak_normalisation_is_per_row() -> None:
    quiet = torch.sin(torch.linspace(0, 60, 1000)) * 0.5
    loud = quiet * 3.0  # peak 1.5
    got = spectrogram(torch.stack([quiet, loud]), **SMALL)
    torch.testing.assert_close(got[0], spectrogram_raw(quiet, **SMALL)[0])
    torch.testing.assert_close(got[1], spectrogram_raw(loud / 1.5, **SMALL)[0])


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [(32000, 2048, 128, 0.0, None), (22050, 1024, 80, 50.0, 8000.0), (16000, 512, 40, 20.0, 7600.0)],
)
def test_mel_filterbank_equals_librosa(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> None:
    want = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    got = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_mel_filterbank_dtype_and_device_follow_arguments() -> None:
    bank = mel_filterbank(dtype=torch.float64)
    assert bank.dtype == torch.float64 and bank.shape == (128, 1025)


def test_spec_to_mel_log_and_clamp() -> None:
    spec = torch.rand(2, 1025, 7) * 10
    bank = torch.from_numpy(librosa.filters.mel(sr=32000, n_fft=2048, n_mels=128))
    want = torch.log(torch.clamp(bank @ spec, min=1e-5))
    torch.testing.assert_close(spec_to_mel(spec), want, rtol=1e-5, atol=1e-5)
    floor = spec_to_mel(torch.zeros(1, 1025, 3))
    torch.testing.assert_close(floor, torch.full_like(floor, float(np.log(1e-5))))


def test_mel_spectrogram_is_spec_then_mel_without_normalisation() -> None:
    y = torch.randn(1, 640 * 6) * 1.7  # peak > 1: the mel path must not rescale it
    got = mel_spectrogram(y)
    assert got.shape == (1, 128, 6)
    torch.testing.assert_close(got, spec_to_mel(spectrogram_raw(y)))
    assert not torch.allclose(got, spec_to_mel(spectrogram(y)))


@pytest.mark.parametrize("bad", [torch.zeros(1, 1, 4000), torch.zeros(4000, dtype=torch.int16)])
def test_bad_input_raises(bad: torch.Tensor) -> None:
    with pytest.raises(DataError):
        spectrogram(bad)


def test_too_short_input_raises() -> None:
    with pytest.raises(DataError, match="too short"):
        spectrogram(torch.zeros(100))
