"""A new voice reference from a recording: its linear spectrogram, with numpy only (no torch).

The spectrogram is the one :func:`autocompress.models.gpt_sovits.audio.spectrogram` gives for a
reference: audio peaking above 1 divided by ``min(2, peak)``, a reflect pad of
``(n_fft - hop) // 2`` samples on each side, no centring, a periodic Hann window and the
magnitude ``sqrt(re^2 + im^2 + 1e-8)``.

Audio at another rate is resampled with scipy's polyphase filter (``resample_poly``, Kaiser
window). That is not torchaudio's windowed-sinc resampler (nor librosa's soxr, which upstream's
inference uses), so the samples differ slightly, mostly near the new Nyquist frequency; give a
32 kHz file to get exactly the spectrogram the PyTorch model computes.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from autocompress.exceptions import DataError

MAGNITUDE_EPS = 1e-8  # inside the square root of the STFT magnitude (as the PyTorch model)
_FRAMES_PER_BLOCK = 512  # STFT frames transformed at once (bounds the memory of a long file)


def spectrogram(wav: np.ndarray, n_fft: int = 2048, hop_length: int = 640, win_length: int = 2048) -> np.ndarray:
    """Linear spectrogram ``[n_fft // 2 + 1, frames]`` (float32) of a mono waveform ``[N]``,
    prepared as the PyTorch model prepares a reference (see the module docstring).

    Raises:
        DataError: not a 1-d float waveform, non-finite samples, or too short for one frame.
    """
    y = np.asarray(wav)
    if y.ndim != 1 or y.dtype.kind != "f":
        raise DataError(f"expected a 1-d float waveform, got an array of {y.dtype} shaped {list(y.shape)}")
    if not np.isfinite(y).all():
        raise DataError("the waveform holds NaN or inf samples")
    pad = (n_fft - hop_length) // 2
    least = min_samples(n_fft, hop_length)
    if y.size < least:
        raise DataError(f"audio too short for a spectrogram: need at least {least} samples, got {y.size}")
    y = y.astype(np.float64)
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        y = y / min(peak, 2.0)
    y = np.pad(y, (pad, pad), mode="reflect")
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2  # a shorter window sits in the middle of the frame
    window[left : left + win_length] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    n_frames = (y.size - n_fft) // hop_length + 1
    out = np.empty((n_fft // 2 + 1, n_frames), dtype=np.float32)
    for start in range(0, n_frames, _FRAMES_PER_BLOCK):
        stop = min(start + _FRAMES_PER_BLOCK, n_frames)
        index = np.arange(start, stop)[:, None] * hop_length + np.arange(n_fft)[None, :]  # [frames, n_fft]
        spectrum = np.fft.rfft(y[index] * window, axis=1)  # [frames, bins]
        power = spectrum.real**2 + spectrum.imag**2
        out[:, start:stop] = np.sqrt(power + MAGNITUDE_EPS).T
    return out


def min_samples(n_fft: int = 2048, hop_length: int = 640) -> int:
    """The fewest samples :func:`spectrogram` takes: more than the reflect pad, and one whole frame."""
    pad = (n_fft - hop_length) // 2
    return max(pad + 1, n_fft - 2 * pad)


def read_reference(path: str | Path, sampling_rate: int, flag: str = "--ref-wav") -> np.ndarray:
    """A recording as a float32 mono waveform ``[N]`` at ``sampling_rate``.

    Integer audio is scaled to [-1, 1) (int16 / 32768); channels are averaged; another rate is
    resampled (see the module docstring). ``flag`` names the source in error messages.

    Raises:
        DataError: a missing file, unreadable, empty, non-finite or all-zero audio, or scipy missing
            for a resample.
    """
    if Path(path).is_dir():
        raise DataError(f"{flag} {path}: a folder, not a recording; give the recording's file")
    if not Path(path).exists():  # soundfile says only "System error" for a missing file
        raise DataError(f"{flag} {path}: no such file; give the path of a recording of the voice")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [N, channels]
    except (RuntimeError, OSError, TypeError) as e:  # soundfile's errors are RuntimeErrors
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DataError(f"{flag} {path}: cannot be read as audio ({why}); give a WAV (or FLAC/OGG) file") from None
    if data.size == 0:
        raise DataError(f"{flag} {path}: the file holds no audio samples; give a recording of the voice")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if not np.isfinite(mono).all():
        raise DataError(f"{flag} {path}: the audio holds NaN or inf samples; give a clean recording")
    if not mono.any():
        raise DataError(f"{flag} {path}: the audio is silent (every sample is zero); give a recording of the voice")
    if rate != sampling_rate:
        mono = _resample(mono, rate, sampling_rate, f"{flag} {path}")
    return mono


def reference_spectrogram(
    path: str | Path,
    sampling_rate: int = 32000,
    n_fft: int = 2048,
    hop_length: int = 640,
    win_length: int = 2048,
    flag: str = "--ref-wav",
) -> np.ndarray:
    """The reference spectrogram ``[n_fft // 2 + 1, T]`` of a recording (:func:`read_reference`,
    then :func:`spectrogram`).

    Raises:
        DataError: as :func:`read_reference`, or a recording too short for one frame.
    """
    wav = read_reference(path, sampling_rate, flag)
    least = min_samples(n_fft, hop_length)
    if wav.size < least:
        raise DataError(
            f"{flag} {path}: too short ({wav.size / sampling_rate * 1000:.1f} ms); a reference needs at least "
            f"{least} samples at {sampling_rate} Hz ({least / sampling_rate * 1000:.0f} ms), a few seconds of speech "
            "in practice"
        )
    return spectrogram(wav, n_fft, hop_length, win_length)


def _resample(wav: np.ndarray, rate: int, target: int, source: str) -> np.ndarray:
    try:
        from scipy.signal import resample_poly
    except ImportError:
        raise DataError(
            f"{source} is at {rate} Hz; resampling it to {target} Hz needs scipy (pip install scipy), "
            f"or give a {target} Hz file"
        ) from None
    ratio = Fraction(target, rate)
    return resample_poly(wav.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


__all__ = ["MAGNITUDE_EPS", "min_samples", "read_reference", "reference_spectrogram", "spectrogram"]
