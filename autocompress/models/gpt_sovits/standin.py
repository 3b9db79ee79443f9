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

**Version 2** (``version=2``, the demo voice's third build) adds the pitch that HuBERT's codes carry
and a log-mel cannot (its 400-point frames do not resolve harmonics): step 4's 80 values are
joined by two more per frame, ``F0_WEIGHT * log2(f0 / F0_REF)`` (clipped to +-1.5 octaves; 0
when unvoiced) and ``VOICING_WEIGHT * (voiced - 0.5)``, and step 5 projects the 82 values with
its own seeded ``[768, 82]`` matrix (seed ``STANDIN_SEED + 2``). ``f0`` is
:func:`standin_pitch`, a YIN estimate per frame. Version 1 (no pitch) is the default, so that
voices built on it keep their features; ``demo.json`` says which version a voice uses.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
import torchaudio

from autocompress.exceptions import DataError

STANDIN_SAMPLE_RATE = 16000  # input rate, like HuBERT
STANDIN_WIN = 400  # samples per frame (25 ms); also the FFT size
STANDIN_HOP = 320  # samples between frames (20 ms -> 50 Hz)
STANDIN_N_MELS = 80
STANDIN_DIM = 768  # HuBERT-base feature width, which SoVITS's ssl_proj expects
STANDIN_SEED = 20261101  # seeds the projection; part of the definition
STANDIN_VERSIONS = (1, 2)
F0_REF = 172.0  # Hz, the demo source's median F0 (version 2)
F0_WEIGHT = 12.0  # feature units per octave (version 2): codes then keep F0 to about half a semitone
VOICING_WEIGHT = 3.0
YIN_MIN_HZ, YIN_MAX_HZ = 60.0, 400.0
YIN_THRESHOLD = 0.15  # first dip of the normalised difference below this is the period
YIN_VOICED = 0.3  # a frame is voiced when its best dip is below this ...
YIN_MIN_RMS = 3e-3  # ... and its RMS above this
_LOG_FLOOR = 1e-5
_OFFSET = 5.0  # affine normalisation of the log-mel, part of the definition
_SCALE = 4.0


def standin_frames(n_samples: int) -> int:
    """Return the number of 50 Hz frames for ``n_samples`` of 16 kHz audio (HuBERT's count)."""
    if n_samples < STANDIN_WIN:
        return 0
    return (n_samples - STANDIN_WIN) // STANDIN_HOP + 1


def _check_version(version: int) -> None:
    if version not in STANDIN_VERSIONS:
        raise DataError(f"unknown stand-in version {version!r}; known: {STANDIN_VERSIONS}")


def _n_inputs(version: int) -> int:
    return STANDIN_N_MELS + (2 if version == 2 else 0)


@functools.lru_cache(maxsize=2)
def _projection(version: int = 1) -> torch.Tensor:
    n_in = _n_inputs(version)
    gen = torch.Generator().manual_seed(STANDIN_SEED + (0 if version == 1 else version))
    gauss = torch.randn(STANDIN_DIM, n_in, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)  # q: [768, n_in] orthonormal columns
    q = q * torch.sign(torch.diagonal(r))[None, :]  # make the factorisation unique
    return (q * math.sqrt(STANDIN_DIM / n_in)).to(torch.float32)


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


def _as_batch(wav16k: torch.Tensor) -> torch.Tensor:
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
    return wav


def standin_pitch(wav16k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate F0 per stand-in frame with YIN: ``(f0_hz [B, T50], voiced [B, T50] bool)``.

    Frame ``t`` compares the 400 samples from ``320 t`` (the log-mel frame) with themselves
    shifted by each lag of 40-267 samples (400-60 Hz), zeros past the end. The period is the
    first dip of the cumulative-mean-normalised difference below ``YIN_THRESHOLD`` (else the
    deepest), refined by a parabola; unvoiced frames (dip above ``YIN_VOICED`` or RMS below
    ``YIN_MIN_RMS``) get ``f0 = 0``.

    Raises:
        DataError: as :func:`standin_log_mel`.
    """
    wav = _as_batch(wav16k)
    n_frames = standin_frames(wav.shape[-1])
    tau_min = int(STANDIN_SAMPLE_RATE // YIN_MAX_HZ)  # 40
    tau_max = int(math.ceil(STANDIN_SAMPLE_RATE / YIN_MIN_HZ))  # 267
    span = STANDIN_WIN + tau_max + 1
    need = (n_frames - 1) * STANDIN_HOP + span
    x = F.pad(wav, (0, max(0, need - wav.shape[-1]))).double()
    frames = x.unfold(-1, span, STANDIN_HOP)[:, :n_frames]  # [B, T, span]
    head = frames[..., :STANDIN_WIN]
    n_fft = 1 << (span + STANDIN_WIN).bit_length()
    cross = torch.fft.irfft(
        torch.fft.rfft(frames, n_fft) * torch.fft.rfft(head, n_fft).conj(), n_fft
    )[..., : tau_max + 1]  # sum_j head[j] * frames[j + tau]
    sq = F.pad(frames.square().cumsum(-1), (1, 0))
    taus = torch.arange(tau_max + 1)
    shifted_energy = sq[..., taus + STANDIN_WIN] - sq[..., taus]  # sum_j frames[j + tau]^2
    diff = (sq[..., STANDIN_WIN : STANDIN_WIN + 1] + shifted_energy - 2 * cross).clamp(min=0)
    cum = diff[..., 1:].cumsum(-1)
    cmnd = diff[..., 1:] * taus[1:] / cum.clamp(min=1e-12)  # index i is lag i + 1
    cmnd = torch.where(cum > 1e-12, cmnd, torch.ones_like(cmnd))
    lags = cmnd[..., tau_min - 1 : tau_max - 1]  # lags tau_min .. tau_max - 1
    below = lags < YIN_THRESHOLD
    first = torch.where(below.any(-1), below.float().argmax(-1), lags.argmin(-1))
    # walk from the first lag below the threshold to the bottom of its dip (within half a period)
    idx = torch.arange(lags.shape[-1])
    window = (idx >= first[..., None]) & (idx <= first[..., None] * 3 // 2 + tau_min // 2)
    best = torch.where(window, lags, torch.full_like(lags, math.inf)).argmin(-1)
    left = lags.gather(-1, (best - 1).clamp(min=0)[..., None])[..., 0]
    mid = lags.gather(-1, best[..., None])[..., 0]
    right = lags.gather(-1, (best + 1).clamp(max=lags.shape[-1] - 1)[..., None])[..., 0]
    curve = left - 2 * mid + right
    shift = torch.where(curve > 1e-9, 0.5 * (left - right) / curve, torch.zeros_like(curve)).clamp(-1, 1)
    period = best.double() + tau_min + shift
    rms = head.square().mean(-1).sqrt()
    voiced = (mid < YIN_VOICED) & (rms > YIN_MIN_RMS)
    f0 = torch.where(voiced, STANDIN_SAMPLE_RATE / period, torch.zeros_like(period))
    return f0.float(), voiced


def standin_log_mel(wav16k: torch.Tensor) -> torch.Tensor:
    """Return the normalised 80-band log-mel frames of step 4 of the definition.

    Args:
        wav16k: 16 kHz audio ``[N]`` or ``[B, N]``.

    Returns:
        ``[B, 80, T50]`` float32.

    Raises:
        DataError: when the audio is shorter than one frame (400 samples).
    """
    wav = _as_batch(wav16k)
    window = torch.hann_window(STANDIN_WIN, dtype=torch.float32)
    spec = torch.stft(
        wav, n_fft=STANDIN_WIN, hop_length=STANDIN_HOP, win_length=STANDIN_WIN,
        window=window, center=False, return_complex=True,
    )  # [B, 201, T50]
    power = spec.real.square() + spec.imag.square()
    mel = torch.einsum("bft,fm->bmt", power, _mel_filters())  # [B, 80, T50]
    return (torch.log(torch.clamp(mel, min=_LOG_FLOOR)) + _OFFSET) / _SCALE


def standin_pitch_rows(wav16k: torch.Tensor) -> torch.Tensor:
    """Version 2's two pitch rows ``[B, 2, T50]``: weighted log2 F0 re ``F0_REF``, voicing."""
    f0, voiced = standin_pitch(wav16k)
    octaves = torch.log2(f0.clamp(min=1.0) / F0_REF).clamp(-1.5, 1.5)
    pitch = torch.where(voiced, F0_WEIGHT * octaves, torch.zeros_like(octaves))
    return torch.stack([pitch, VOICING_WEIGHT * (voiced.float() - 0.5)], dim=1)


def standin_features(wav16k: torch.Tensor, version: int = 1) -> torch.Tensor:
    """Compute the demo's HuBERT stand-in: ``[B, 768, T50]`` float32 from 16 kHz audio.

    Args:
        wav16k: 16 kHz audio ``[N]`` or ``[B, N]`` in about [-1, 1].
        version: 1 (log-mel) or 2 (log-mel and pitch); see the module docstring.

    Returns:
        Features ``[B, 768, floor((N - 400) / 320) + 1]``.

    Raises:
        DataError: when the audio is shorter than 400 samples or not 1-D/2-D, or the
            version is unknown.
    """
    _check_version(version)
    rows = standin_log_mel(wav16k)  # [B, 80, T50]
    if version == 2:
        rows = torch.cat([rows, standin_pitch_rows(wav16k)], dim=1)
    return torch.einsum("dm,bmt->bdt", _projection(version), rows)


def standin_rows(features: torch.Tensor, version: int = 1) -> torch.Tensor:
    """Invert step 5: features ``[..., 768, T]`` -> the rows they project ``[..., 80 or 82, T]``.

    Exact for features made by :func:`standin_features`; for other vectors of the feature
    space (codebook centroids, for one) it is the least-squares rows they stand for.
    """
    _check_version(version)
    proj = _projection(version)  # [768, n], proj.T @ proj = (768 / n) I
    return torch.einsum("dm,...dt->...mt", proj, features.float()) * (proj.shape[1] / STANDIN_DIM)


def standin_to_log_mel(features: torch.Tensor, version: int = 1) -> torch.Tensor:
    """Features ``[..., 768, T]`` -> the normalised 80-band log-mel ``[..., 80, T]`` they hold."""
    return standin_rows(features, version)[..., :STANDIN_N_MELS, :]


def log_mel_natural(normalised: torch.Tensor) -> torch.Tensor:
    """Undo step 4's affine map: normalised log-mel -> natural-log mel power."""
    return normalised * _SCALE - _OFFSET


__all__ = [
    "STANDIN_DIM",
    "STANDIN_HOP",
    "STANDIN_SAMPLE_RATE",
    "STANDIN_SEED",
    "STANDIN_VERSIONS",
    "STANDIN_WIN",
    "standin_features",
    "standin_frames",
    "log_mel_natural",
    "standin_log_mel",
    "standin_pitch",
    "standin_pitch_rows",
    "standin_rows",
    "standin_to_log_mel",
    "voiced_recall",
    "voicing",
]


# --------------------------------------------------------------------------- evaluation


def voicing(wav32k: torch.Tensor, sample_rate: int = 32000) -> tuple[torch.Tensor, torch.Tensor]:
    """YIN F0 ``[T50]`` and voicing ``[T50]`` (:func:`standin_pitch`) of mono audio ``[N]`` at ``sample_rate``."""
    f0, voiced = standin_pitch(torchaudio.functional.resample(wav32k.float(), sample_rate, STANDIN_SAMPLE_RATE))
    return f0[0], voiced[0]


def voiced_recall(
    out32k: torch.Tensor, source: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
) -> tuple[float, float]:
    """Of the source's voiced (periodic) frames, the share that are voiced in a time-aligned output,
    and the median F0 error on the frames voiced in both, in cents (nan when there are none).

    ``source`` is the 32 kHz source audio, or its :func:`voicing` when that is already known.
    Noise-like output that follows the energy envelope scores 0; it is the first thing a
    decoder that has learned harmonics gets right.
    """
    f_o, v_o = voicing(out32k.detach().cpu())
    f_s, v_s = source if isinstance(source, tuple) else voicing(source.detach().cpu())
    n = min(f_o.numel(), f_s.numel())
    v_o, v_s, f_o, f_s = v_o[:n], v_s[:n], f_o[:n], f_s[:n]
    recall = float(v_o[v_s].float().mean()) if v_s.any() else float("nan")
    both = v_o & v_s
    cents = float((1200 * torch.log2(f_o[both] / f_s[both])).abs().median()) if both.any() else float("nan")
    return recall, cents
