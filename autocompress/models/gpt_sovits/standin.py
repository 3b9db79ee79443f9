"""Content features for the demo voice: a fixed DSP stand-in for chinese-hubert-base.

Upstream GPT-SoVITS feeds SoVITS the ``last_hidden_state`` of a HuBERT model (768 dims,
50 frames per second of 16 kHz audio). The demo voice ships without HuBERT (its weights
would have to be downloaded), so the demo teacher is trained on a stand-in computed here
instead, and the search computes the same stand-in for reference audio.

**This is a demo stand-in, not HuBERT.** It carries spectral envelope, not learned
phonetic content; a voice trained on it only works with this function, and real user
voices (trained on HuBERT) must not be fed these features.

Definition (fixed; changing any constant invalidates the shipped demo voice):

1. 16 kHz mono float audio ``[N]`` in about [-1, 1].
2. Frames of 400 samples (25 ms), hop 320 (20 ms), no centring or padding, periodic Hann
   window, 400-point FFT. Frame count ``floor((N - 400) / 320) + 1``, HuBERT's count.
3. Power spectrum through an 80-band Slaney mel filterbank (0-8 kHz, Slaney area norm).
4. ``log(max(mel, 1e-5))``, then the fixed affine map ``(x + 5) / 4`` (speech lands
   roughly in [-2, 2]).
5. A fixed projection ``[768, 80]``: orthonormal columns from the QR factorisation of a
   standard-normal matrix drawn with ``torch.Generator().manual_seed(STANDIN_SEED)``,
   scaled by ``sqrt(768 / 80)`` so that per-dimension variance is kept.

Output ``[B, 768, T50]`` float32.
"""

from __future__ import annotations

import functools
import math

import torch
import torchaudio

from autocompress.exceptions import DataError

STANDIN_SAMPLE_RATE = 16000  # input rate, like HuBERT
STANDIN_WIN = 400  # samples per frame (25 ms); also the FFT size
STANDIN_HOP = 320  # samples between frames (20 ms -> 50 Hz)
STANDIN_N_MELS = 80
STANDIN_DIM = 768  # HuBERT-base feature width, which SoVITS's ssl_proj expects
STANDIN_SEED = 20261101  # seeds the projection; part of the definition
_LOG_FLOOR = 1e-5
_OFFSET = 5.0  # affine normalisation of the log-mel, part of the definition
_SCALE = 4.0


def standin_frames(n_samples: int) -> int:
    """Return the number of 50 Hz frames for ``n_samples`` of 16 kHz audio (HuBERT's count)."""
    if n_samples < STANDIN_WIN:
        return 0
    return (n_samples - STANDIN_WIN) // STANDIN_HOP + 1


@functools.lru_cache(maxsize=1)
def _projection() -> torch.Tensor:
    gen = torch.Generator().manual_seed(STANDIN_SEED)
    gauss = torch.randn(STANDIN_DIM, STANDIN_N_MELS, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)  # q: [768, 80] orthonormal columns
    q = q * torch.sign(torch.diagonal(r))[None, :]  # make the factorisation unique
    return (q * math.sqrt(STANDIN_DIM / STANDIN_N_MELS)).to(torch.float32)


@functools.lru_cache(maxsize=1)
def _mel_filters() -> torch.Tensor:
    return torchaudio.functional.melscale_fbanks(
        n_freqs=STANDIN_WIN // 2 + 1,
        f_min=0.0,
        f_max=STANDIN_SAMPLE_RATE / 2,
        n_mels=STANDIN_N_MELS,
        sample_rate=STANDIN_SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )  # [201, 80]


def standin_log_mel(wav16k: torch.Tensor) -> torch.Tensor:
    """Return the normalised 80-band log-mel frames of step 4 of the definition.

    Args:
        wav16k: 16 kHz audio ``[N]`` or ``[B, N]``.

    Returns:
        ``[B, 80, T50]`` float32.

    Raises:
        DataError: when the audio is shorter than one frame (400 samples).
    """
    wav = wav16k.to(torch.float32)
    if wav.dim() == 1:
        wav = wav[None]
    if wav.dim() != 2:
        raise DataError(f"stand-in features need audio [N] or [B, N], got shape {tuple(wav16k.shape)}")
    if wav.shape[-1] < STANDIN_WIN:
        raise DataError(
            f"audio too short for content features: {wav.shape[-1]} samples at 16 kHz, "
            f"need at least {STANDIN_WIN}"
        )
    window = torch.hann_window(STANDIN_WIN, dtype=torch.float32)
    spec = torch.stft(
        wav, n_fft=STANDIN_WIN, hop_length=STANDIN_HOP, win_length=STANDIN_WIN,
        window=window, center=False, return_complex=True,
    )  # [B, 201, T50]
    power = spec.real.square() + spec.imag.square()
    mel = torch.einsum("bft,fm->bmt", power, _mel_filters())  # [B, 80, T50]
    return (torch.log(torch.clamp(mel, min=_LOG_FLOOR)) + _OFFSET) / _SCALE


def standin_features(wav16k: torch.Tensor) -> torch.Tensor:
    """Compute the demo's HuBERT stand-in: ``[B, 768, T50]`` float32 from 16 kHz audio.

    Args:
        wav16k: 16 kHz audio ``[N]`` or ``[B, N]`` in about [-1, 1].

    Returns:
        Features ``[B, 768, floor((N - 400) / 320) + 1]``.

    Raises:
        DataError: when the audio is shorter than 400 samples or not 1-D/2-D.
    """
    log_mel = standin_log_mel(wav16k)  # [B, 80, T50]
    return torch.einsum("dm,bmt->bdt", _projection(), log_mel)


def standin_to_log_mel(features: torch.Tensor) -> torch.Tensor:
    """Invert step 5: features ``[..., 768, T]`` -> normalised 80-band log-mel ``[..., 80, T]``.

    Exact for features made by :func:`standin_features`; for other vectors of the feature
    space (codebook centroids, for one) it is the least-squares log-mel they stand for.
    """
    proj = _projection()  # [768, 80], proj.T @ proj = (768 / 80) I
    return torch.einsum("dm,...dt->...mt", proj, features.float()) * (STANDIN_N_MELS / STANDIN_DIM)


def log_mel_natural(normalised: torch.Tensor) -> torch.Tensor:
    """Undo step 4's affine map: normalised log-mel -> natural-log mel power."""
    return normalised * _SCALE - _OFFSET


__all__ = [
    "STANDIN_DIM",
    "STANDIN_HOP",
    "STANDIN_SAMPLE_RATE",
    "STANDIN_SEED",
    "STANDIN_WIN",
    "standin_features",
    "standin_frames",
    "log_mel_natural",
    "standin_log_mel",
    "standin_to_log_mel",
]
