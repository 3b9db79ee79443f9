"""Speech-like test signals: espeak-ng output when installed, else a formant-filtered pulse train."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SENTENCE = "The quick brown fox jumps over the lazy dog, then rests beside the quiet river."
HAS_ESPEAK = shutil.which("espeak-ng") is not None


def espeak(text: str = SENTENCE, voice: str = "en-us", pitch: int = 50) -> tuple[np.ndarray, int]:
    """Synthesize ``text`` with espeak-ng (22.05 kHz mono float)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), text], check=True,
                       capture_output=True)
        audio, sr = sf.read(path, dtype="float32")
    return audio, sr


def formant_speech(seconds: float = 2.5, sr: int = 32000, f0: float = 120.0) -> tuple[np.ndarray, int]:
    """A harmonic source through three moving formant resonators, in syllable-like bursts."""
    from scipy.signal import lfilter

    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    source = sum(np.sin(k * phase) / k for k in range(1, int(8000 / f0)))
    out = np.zeros_like(t)
    vowels = [(700, 1200, 2600), (300, 2300, 3000), (500, 900, 2400), (400, 1900, 2550)]
    seg = len(t) // len(vowels)
    for i, formants in enumerate(vowels):
        chunk = source[i * seg : (i + 1) * seg]
        y = np.zeros_like(chunk)
        for f in formants:
            r = np.exp(-np.pi * 100 / sr)
            y += lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / sr), r * r], chunk)
        out[i * seg : (i + 1) * seg] = y
    envelope = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 0.5  # 4 syllables/s, with gaps
    out = out * envelope
    return (0.5 * out / np.abs(out).max()).astype(np.float32), sr


needs_espeak = pytest.mark.skipif(
    not HAS_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)
