"""Writing synthesised audio: 16-bit PCM WAV, written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from autocompress.exceptions import DataError
from autocompress.runtime.files import atomic_write_bytes


def wav_bytes(wav: np.ndarray, sampling_rate: int) -> bytes:
    """Encode a float waveform ``[N]`` as 16-bit PCM WAV bytes.

    Audio peaking above 1 is scaled down to peak 1 first (as upstream's WebUI does) instead
    of being clipped.

    Raises:
        DataError: the waveform holds NaN or inf samples (they would be written as full scale).
    """
    audio = np.asarray(wav, dtype=np.float32).reshape(-1)
    if not np.isfinite(audio).all():
        raise DataError(f"the waveform holds {int((~np.isfinite(audio)).sum())} NaN or inf samples; nothing written")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    buffer = io.BytesIO()
    sf.write(buffer, audio, sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_wav(path: str | Path, wav: np.ndarray, sampling_rate: int) -> None:
    """Write ``wav`` to ``path`` as 16-bit PCM (see :func:`wav_bytes`), atomically."""
    atomic_write_bytes(path, wav_bytes(wav, sampling_rate))


__all__ = ["wav_bytes", "write_wav"]
