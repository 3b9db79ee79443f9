"""Write upstream experiment folders from in-memory items, and make small synthetic ones.

:func:`write_experiment` is how the demo voice's training data and test fixtures are
produced; :func:`make_synthetic_experiment` builds a seeded, valid folder of tones and
random features in well under a second.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.config import SOVITS_VERSIONS
from autocompress.models.gpt_sovits.data._folder import (
    BERT_DIM,
    BERT_DIR,
    CODEBOOK_SIZE,
    HUBERT_DIR,
    NAME2TEXT,
    SAMPLE_RATE,
    SEMANTIC,
    SEMANTIC_HEADER,
    SSL_DIM,
    SV_DIM,
    SV_DIR,
    WAV_DIR,
    ExperimentFolder,
    hubert_frames_for,
)
from autocompress.models.gpt_sovits.text import phones_to_ids, symbols

_AUDIO_FORMATS = {"wav": "WAV", "flac": "FLAC"}


@dataclass(frozen=True)
class ExperimentRecord:
    """One utterance to write into an experiment folder.

    ``name`` is the audio file's basename and must end in the extension of the chosen
    audio format (``.wav`` or ``.flac``).
    """

    name: str
    phones: Sequence[str]
    norm_text: str
    wav: np.ndarray | torch.Tensor  # [N] float32 at 32 kHz, within [-1, 1]
    hubert: torch.Tensor  # [1, 768, T50]
    codes: Sequence[int] | None = None  # 25 Hz semantic codes, 0..1023
    bert: torch.Tensor | None = None  # [1024, n_phones]
    sv: torch.Tensor | None = None  # [1, 20480], v2Pro/v2ProPlus only
    word2ph: Sequence[int] | None = None


def write_experiment(
    root: str | Path,
    items: Sequence[ExperimentRecord],
    version: str = "v2",
    audio_format: str = "wav",
    overwrite: bool = False,
) -> ExperimentFolder:
    """Write items in upstream's experiment-folder layout and open the result.

    Audio is written as 16-bit PCM (``round(x * 32768)``, clipped to the int16 range), as
    int16 WAV like upstream or as FLAC PCM_16; tensors with ``torch.save`` as given.
    Every item is checked before anything is written.

    Args:
        root: the folder to create (``logs/<exp_name>``).
        items: the utterances.
        version: model version (symbol table; Pro versions require ``sv``).
        audio_format: ``"wav"`` or ``"flac"``.
        overwrite: replace the layout files of an existing experiment in ``root``.

    Returns:
        The written folder, opened as an :class:`ExperimentFolder`.

    Raises:
        DataError: an invalid item, or an existing experiment without ``overwrite``.
    """
    if version not in SOVITS_VERSIONS:
        raise DataError(f"unknown version {version!r}; expected one of {SOVITS_VERSIONS}")
    if audio_format not in _AUDIO_FORMATS:
        raise DataError(f"audio_format must be one of {sorted(_AUDIO_FORMATS)}, got {audio_format!r}")
    if not items:
        raise DataError("write_experiment got no items")
    pro = version in ("v2Pro", "v2ProPlus")
    audio = [_check_record(r, version, audio_format, pro) for r in items]
    names = [r.name for r in items]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"item name {dup!r} appears twice")

    root = Path(root)
    if (root / NAME2TEXT).exists():
        if not overwrite:
            raise DataError(f"{root / NAME2TEXT} already exists; pass overwrite=True to replace the experiment")
        for part in (BERT_DIR, HUBERT_DIR, WAV_DIR, SV_DIR):
            if (root / part).is_dir():
                shutil.rmtree(root / part)
        (root / SEMANTIC).unlink(missing_ok=True)
    for part in (HUBERT_DIR, WAV_DIR) + ((SV_DIR,) if pro else ()):
        (root / part).mkdir(parents=True, exist_ok=True)
    if any(r.bert is not None for r in items):
        (root / BERT_DIR).mkdir(exist_ok=True)

    lines, semantic = [], []
    for r, pcm in zip(items, audio):
        soundfile.write(
            str(root / WAV_DIR / r.name), pcm, SAMPLE_RATE, format=_AUDIO_FORMATS[audio_format], subtype="PCM_16"
        )
        torch.save(r.hubert.detach().cpu().contiguous(), root / HUBERT_DIR / f"{r.name}.pt")
        if r.bert is not None:
            torch.save(r.bert.detach().cpu().contiguous(), root / BERT_DIR / f"{r.name}.pt")
        if r.sv is not None and pro:
            torch.save(r.sv.detach().cpu().contiguous(), root / SV_DIR / f"{r.name}.pt")
        word2ph = "None" if r.word2ph is None else repr([int(w) for w in r.word2ph])
        lines.append(f"{r.name}\t{' '.join(r.phones)}\t{word2ph}\t{r.norm_text}\n")
        if r.codes is not None:
            semantic.append(f"{r.name}\t{' '.join(str(int(c)) for c in r.codes)}\n")
    (root / NAME2TEXT).write_text("".join(lines), encoding="utf-8")
    if semantic:
        (root / SEMANTIC).write_text(SEMANTIC_HEADER + "\n" + "".join(semantic), encoding="utf-8")
    return ExperimentFolder(root, version=version)


def _check_record(r: ExperimentRecord, version: str, audio_format: str, pro: bool) -> np.ndarray:
    """Validate one record; return its audio as int16 PCM ``[N]``."""
    where = f"item {r.name!r}"
    if not r.name or "/" in r.name or "\\" in r.name or "\t" in r.name or "\n" in r.name:
        raise DataError(f"{where}: a name must be a plain file name without tabs or newlines")
    if not r.name.lower().endswith("." + audio_format):
        raise DataError(f"{where}: name must end in .{audio_format} to be written as {audio_format}")
    if "\t" in r.norm_text or "\n" in r.norm_text:
        raise DataError(f"{where}: norm_text must not hold tabs or newlines")
    if not r.phones:
        raise DataError(f"{where}: no phones")
    try:
        phones_to_ids(r.phones, version)
    except DataError as e:
        raise DataError(f"{where}: {e}") from e
    wav = r.wav.detach().cpu().numpy() if isinstance(r.wav, torch.Tensor) else np.asarray(r.wav)
    if wav.ndim != 1 or wav.size == 0 or not np.issubdtype(wav.dtype, np.floating):
        raise DataError(f"{where}: wav must be a non-empty 1-D float array, got {wav.dtype} {list(wav.shape)}")
    if not np.isfinite(wav).all() or np.abs(wav).max() > 1.0:
        raise DataError(f"{where}: wav must be finite and within [-1, 1], peak {np.abs(wav).max():.3f}")
    _check_tensor(where, "hubert", r.hubert, (1, SSL_DIM, None))
    if r.bert is not None:
        _check_tensor(where, "bert", r.bert, (BERT_DIM, len(r.phones)))
    if pro:
        if r.sv is None:
            raise DataError(f"{where}: {version} items need an sv embedding [1, {SV_DIM}]")
        _check_tensor(where, "sv", r.sv, (1, SV_DIM))
    if r.codes is not None:
        codes = [int(c) for c in r.codes]
        if not codes or min(codes) < 0 or max(codes) >= CODEBOOK_SIZE:
            raise DataError(f"{where}: codes must be a non-empty list of values in 0..{CODEBOOK_SIZE - 1}")
        if len(codes) not in (r.hubert.shape[2] // 2, r.hubert.shape[2]):
            raise DataError(f"{where}: {len(codes)} codes for {r.hubert.shape[2]} HuBERT frames; the codes of "
                            "T frames are T // 2 (25 Hz, ssl_proj of stride 2), or T for a 50 Hz model")
    return np.clip(np.round(wav.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _check_tensor(where: str, what: str, t: object, expected: tuple[int | None, ...]) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise DataError(f"{where}: {what} must be a float tensor, got {type(t).__name__}")
    if t.dim() != len(expected) or any(e is not None and s != e for s, e in zip(t.shape, expected)):
        shown = ", ".join("T" if e is None else str(e) for e in expected)
        raise DataError(f"{where}: {what} has shape {list(t.shape)}, expected [{shown}]")


# --------------------------------------------------------------------------- synthetic data


def make_synthetic_experiment(
    root: str | Path,
    n_items: int = 6,
    seed: int = 0,
    version: str = "v2",
    duration_s: tuple[float, float] = (1.0, 2.0),
    audio_format: str = "wav",
) -> ExperimentFolder:
    """Write a small, valid, seeded experiment folder and open it.

    Each item is a few harmonics of a gliding tone plus a little noise (peak 0.8), HuBERT
    features of ``floor((N/2 - 400) / 320) + 1`` random frames (fp16, as upstream's half
    mode writes them), random phones of the version's table at 6-14 phones per second,
    random codes of ``T50 // 2`` values, BERT features on every other item, and an SV
    embedding for Pro versions. The same arguments always give the same files.
    """
    if n_items < 1:
        raise DataError(f"n_items must be at least 1, got {n_items}")
    lo, hi = duration_s
    if not 0.1 <= lo <= hi:
        raise DataError(f"duration_s must satisfy 0.1 <= low <= high, got {duration_s}")
    rng = np.random.default_rng(seed)
    table = symbols(version)  # DataError for an unknown version
    pro = version in ("v2Pro", "v2ProPlus")
    records = []
    for i in range(n_items):
        seconds = rng.uniform(lo, hi)
        n = int(round(seconds * SAMPLE_RATE)) // 2 * 2  # even: exactly N/2 samples at 16 kHz
        wav = _tone(rng, n)
        t50 = hubert_frames_for(n)
        n_phones = max(2, int(round(seconds * rng.uniform(6.0, 14.0))))
        phones = [table[j] for j in rng.integers(0, len(table), n_phones)]
        records.append(
            ExperimentRecord(
                name=f"synth_{i:03d}.{audio_format}",
                phones=phones,
                norm_text=f"synthetic utterance number {i}",
                wav=wav,
                hubert=torch.from_numpy(rng.standard_normal((1, SSL_DIM, t50)).astype(np.float16)),
                codes=rng.integers(0, CODEBOOK_SIZE, max(1, t50 // 2)).tolist(),
                bert=(
                    torch.from_numpy(rng.standard_normal((BERT_DIM, n_phones)).astype(np.float32))
                    if i % 2 == 0
                    else None
                ),
                sv=torch.from_numpy(0.1 * rng.standard_normal((1, SV_DIM)).astype(np.float32)) if pro else None,
            )
        )
    return write_experiment(root, records, version=version, audio_format=audio_format)


def _tone(rng: np.random.Generator, n: int) -> np.ndarray:
    """A voiced-sounding test signal: 3-5 harmonics of a gliding f0, noise, 20 ms fades."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(90.0, 240.0) * (1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    y = sum(np.sin(h * phase + rng.uniform(0, 2 * np.pi)) / h for h in range(1, int(rng.integers(3, 6)) + 1))
    y = y + 0.02 * rng.standard_normal(n)
    fade = min(n // 2, int(0.02 * SAMPLE_RATE))
    ramp = np.linspace(0.0, 1.0, fade)
    y[:fade] *= ramp
    y[n - fade :] *= ramp[::-1]
    return (0.8 * y / np.abs(y).max()).astype(np.float32)
