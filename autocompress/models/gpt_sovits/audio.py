"""Audio front end of SoVITS: linear spectrogram, Slaney mel filterbank, log-mel.

The defaults are upstream's (32 kHz, n_fft 2048, hop 640, window 2048, 128 mels); every size
is an argument so that :class:`~autocompress.models.gpt_sovits.config.SoVITSConfig` values can
be passed through. All transforms use ``center=False`` with an explicit reflect pad of
``(n_fft - hop) // 2`` samples on each side, a periodic Hann window and the magnitude
``sqrt(re^2 + im^2 + 1e-8)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from autocompress.exceptions import DataError

MAGNITUDE_EPS = 1e-8  # inside the square root of the STFT magnitude
LOG_CLAMP = 1e-5  # floor of the mel energies before the natural log


def spectrogram(
    wav: torch.Tensor,
    n_fft: int = 2048,
    hop_length: int = 640,
    win_length: int = 2048,
    sampling_rate: int = 32000,
) -> torch.Tensor:
    """Linear spectrogram of reference audio, prepared the way upstream's inference does.

    A waveform whose absolute peak exceeds 1 is divided by ``min(2, peak)`` (per row, on a
    copy: the caller's tensor is never modified), then :func:`spectrogram_raw` is applied.

    Args:
        wav: float waveform at ``sampling_rate``, shaped ``[N]``, ``[1, N]`` or ``[B, N]``.
        n_fft, hop_length, win_length: STFT sizes.
        sampling_rate: only documents the expected rate; the transform does not resample.

    Returns:
        ``[B, n_fft // 2 + 1, frames]`` magnitudes (``B`` = 1 for a 1-D input).
    """
    y = _as_batch(wav)
    peak = y.abs().amax(dim=1, keepdim=True)  # [B, 1]
    divisor = torch.where(peak > 1, torch.clamp(peak, max=2.0), torch.ones_like(peak))
    y = y / divisor  # a new tensor: rows with peak <= 1 are divided by exactly 1
    return spectrogram_raw(y, n_fft, hop_length, win_length, sampling_rate)


def spectrogram_raw(
    wav: torch.Tensor,
    n_fft: int = 2048,
    hop_length: int = 640,
    win_length: int = 2048,
    sampling_rate: int = 32000,
) -> torch.Tensor:
    """Linear spectrogram without any level normalisation (the training-data convention).

    Args:
        wav: float waveform ``[N]``, ``[1, N]`` or ``[B, N]``.
        n_fft, hop_length, win_length: STFT sizes.
        sampling_rate: only documents the expected rate.

    Returns:
        ``[B, n_fft // 2 + 1, frames]`` with ``frames = (N + 2 * pad - n_fft) // hop + 1`` and
        ``pad = (n_fft - hop_length) // 2``.
    """
    del sampling_rate
    y = _as_batch(wav)
    pad = (n_fft - hop_length) // 2
    if y.shape[-1] <= pad:
        raise DataError(
            f"audio too short for a spectrogram: need more than {pad} samples, got {y.shape[-1]}; "
            "pass at least one hop of audio"
        )
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)  # [B, N + 2 pad]
    window = torch.hann_window(win_length, dtype=y.dtype, device=y.device)  # periodic
    stft = torch.stft(
        y,
        n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )  # [B, F, frames]
    parts = torch.view_as_real(stft)  # [B, F, frames, 2]
    return torch.sqrt(parts.pow(2).sum(-1) + MAGNITUDE_EPS)


def mel_filterbank(
    sampling_rate: int = 32000,
    n_fft: int = 2048,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Triangular mel filters on the Slaney mel scale with Slaney area normalisation.

    Equal to ``librosa.filters.mel`` with its defaults (``htk=False``, ``norm="slaney"``).

    Returns:
        ``[n_mels, n_fft // 2 + 1]`` filter weights.
    """
    bank = _mel_filterbank_np(sampling_rate, n_fft, n_mels, float(fmin), fmax)
    return torch.from_numpy(bank.copy()).to(dtype=dtype, device=device)


def spec_to_mel(
    spec: torch.Tensor,
    sampling_rate: int = 32000,
    n_fft: int = 2048,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Log-mel of a linear spectrogram ``[B, n_fft // 2 + 1, T]`` -> ``[B, n_mels, T]``."""
    bank = mel_filterbank(sampling_rate, n_fft, n_mels, fmin, fmax, spec.dtype, spec.device)
    mel = torch.matmul(bank, spec)  # [B, n_mels, T]
    return torch.log(torch.clamp(mel, min=LOG_CLAMP))


def mel_spectrogram(
    wav: torch.Tensor,
    n_fft: int = 2048,
    n_mels: int = 128,
    sampling_rate: int = 32000,
    hop_length: int = 640,
    win_length: int = 2048,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """Log-mel spectrogram of a waveform (no level normalisation) -> ``[B, n_mels, T]``."""
    spec = spectrogram_raw(wav, n_fft, hop_length, win_length, sampling_rate)
    return spec_to_mel(spec, sampling_rate, n_fft, n_mels, fmin, fmax)


# --------------------------------------------------------------------------- helpers


def _as_batch(wav: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(wav) or not wav.is_floating_point():
        raise DataError(
            f"expected a float waveform tensor, got {type(wav).__name__}"
            f"{'' if not torch.is_tensor(wav) else ' of dtype ' + str(wav.dtype)}; "
            "convert int16 audio with / 32768"
        )
    if wav.dim() == 1:
        return wav.unsqueeze(0)
    if wav.dim() == 2:
        return wav
    raise DataError(f"expected a waveform shaped [N], [1, N] or [B, N], got {list(wav.shape)}")


# The Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above.
_HZ_PER_MEL = 200.0 / 3.0
_LOG_HZ = 1000.0  # where the logarithmic part starts
_LOG_MEL = _LOG_HZ / _HZ_PER_MEL
_LOG_STEP = math.log(6.4) / 27.0  # natural-log Hz per mel above _LOG_HZ


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _HZ_PER_MEL
    above = hz >= _LOG_HZ
    mel[above] = _LOG_MEL + np.log(hz[above] / _LOG_HZ) / _LOG_STEP
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _HZ_PER_MEL
    above = mel >= _LOG_MEL
    hz[above] = _LOG_HZ * np.exp(_LOG_STEP * (mel[above] - _LOG_MEL))
    return hz


@functools.lru_cache(maxsize=8)
def _mel_filterbank_np(
    sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> np.ndarray:
    top = sampling_rate / 2.0 if fmax is None else float(fmax)
    fft_hz = np.linspace(0.0, sampling_rate / 2.0, n_fft // 2 + 1)  # [F]
    edges_mel = np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([top]))[0], n_mels + 2)
    edges_hz = _mel_to_hz(edges_mel)  # [n_mels + 2]
    widths = np.diff(edges_hz)  # [n_mels + 1]
    offsets = edges_hz[:, None] - fft_hz[None, :]  # [n_mels + 2, F]
    rising = -offsets[:-2] / widths[:-1, None]  # [n_mels, F]
    falling = offsets[2:] / widths[1:, None]
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]  # equal area per filter
    bank = bank.astype(np.float32)
    bank.setflags(write=False)
    return bank


__all__ = [
    "mel_filterbank",
    "mel_spectrogram",
    "spec_to_mel",
    "spectrogram",
    "spectrogram_raw",
]
