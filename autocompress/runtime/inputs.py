"""What one synthesis call needs, as numpy arrays, and its ``.npz`` form inside a bundle.

The GPT sees the prompt's phones followed by the target's (with BERT features, zeros where
there are none) and the prompt's semantic codes; SoVITS sees the target phones, the new
codes and the reference spectrogram.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autocompress.exceptions import DataError

BERT_DIM = 1024  # width of the BERT features the GPT takes per phone


@dataclass(frozen=True)
class SynthInput:
    """One utterance to synthesise.

    Attributes:
        prompt_phones: ``[Np]`` phone ids of the reference transcript.
        text: ``[Nt]`` phone ids of the text to speak.
        prompt_codes: ``[P]`` semantic codes of the reference audio (25 Hz).
        ref_spec: ``[bins, T]`` linear spectrogram of the reference audio (1025 bins).
        bert: ``[1024, Np + Nt]`` BERT features, or None for zeros (non-Chinese text).
        ref_sv: ``[sv_dim]`` speaker-verification vector of the reference audio (v2Pro and
            v2ProPlus bundles only; GPT-SoVITS writes it to ``7-sv_cn/``), else None.
    """

    prompt_phones: np.ndarray
    text: np.ndarray
    prompt_codes: np.ndarray
    ref_spec: np.ndarray
    bert: np.ndarray | None = None
    ref_sv: np.ndarray | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("prompt_phones", "text", "prompt_codes"):
            a = getattr(self, name)
            if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
                problems.append(f"{name} must be a 1-d integer array, got {a.dtype} {a.shape}")
        if self.text.size == 0:
            problems.append("text is empty; need at least one phone")
        if self.prompt_codes.size == 0:
            problems.append("prompt_codes is empty; the bundle graphs need a reference prompt")
        if self.ref_spec.ndim != 2:
            problems.append(f"ref_spec must be [bins, T], got shape {self.ref_spec.shape}")
        elif self.ref_spec.shape[1] == 0:
            problems.append("ref_spec has no frames; need a reference of at least one frame")
        elif not np.isfinite(self.ref_spec).all():
            problems.append("ref_spec holds NaN or inf values")
        n = self.prompt_phones.size + self.text.size
        if self.bert is not None and self.bert.shape != (BERT_DIM, n):
            problems.append(f"bert must be [{BERT_DIM}, {n}], got {self.bert.shape}")
        if self.ref_sv is not None and (self.ref_sv.ndim != 1 or not np.isfinite(self.ref_sv).all()):
            problems.append(f"ref_sv must be a finite 1-d vector, got shape {self.ref_sv.shape}")
        if problems:
            raise DataError("bad synthesis input: " + "; ".join(problems))

    @property
    def phones(self) -> np.ndarray:
        """The GPT's phone sequence ``[Np + Nt]``: prompt then target."""
        return np.concatenate([self.prompt_phones, self.text]).astype(np.int64)

    def bert_features(self) -> np.ndarray:
        """``[1024, Np + Nt]`` float32 (zeros when none were given)."""
        if self.bert is None:
            return np.zeros((BERT_DIM, self.phones.size), dtype=np.float32)
        return self.bert.astype(np.float32)


def parse_phones(text: str, table: list[str]) -> np.ndarray:
    """Phone ids from ``"HH AH0 L OW1"`` (symbols of ``table``) or ``"12,40,7"`` / ``"12 40 7"`` (ids).

    Among symbols, a ``,`` standing alone between spaces is the comma phone (as in GPT-SoVITS's
    ``2-name2text.txt``: ``"HH AH0 L OW1 , W ER1 L D ."``); a comma inside a word separates.

    Raises:
        DataError: empty text, an unknown symbol, or an id outside the table.
    """
    numbers = text.replace(",", " ").split()
    tokens = []
    for word in text.split():
        tokens += [word] if word == "," else [t for t in word.split(",") if t]
    if not tokens:
        raise DataError("no phones given; pass symbols like 'HH AH0 L OW1' or ids like '12,40,7'")
    if numbers and all(t.isdigit() for t in numbers):
        ids = [int(t) for t in numbers]
        bad = [i for i in ids if i >= len(table)]
        if bad:
            raise DataError(f"phone ids {bad} are outside the symbol table (0..{len(table) - 1})")
        return np.asarray(ids, dtype=np.int64)
    index = {symbol: i for i, symbol in enumerate(table)}
    unknown = [t for t in tokens if t not in index]
    if unknown:
        raise DataError(f"unknown phone symbols {unknown}; see the bundle's symbols.json for the table")
    return np.asarray([index[t] for t in tokens], dtype=np.int64)


def save_inputs(items: list[SynthInput]) -> bytes:
    """Serialise inputs to ``.npz`` bytes (keys ``<i>.<field>``)."""
    arrays: dict[str, np.ndarray] = {}
    for i, item in enumerate(items):
        arrays[f"{i}.prompt_phones"] = item.prompt_phones.astype(np.int64)
        arrays[f"{i}.text"] = item.text.astype(np.int64)
        arrays[f"{i}.prompt_codes"] = item.prompt_codes.astype(np.int64)
        arrays[f"{i}.ref_spec"] = item.ref_spec.astype(np.float32)
        if item.bert is not None:
            arrays[f"{i}.bert"] = item.bert.astype(np.float32)
        if item.ref_sv is not None:
            arrays[f"{i}.ref_sv"] = item.ref_sv.astype(np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def load_inputs(path: str | Path) -> list[SynthInput]:
    """Read inputs written by :func:`save_inputs` (no pickles are loaded)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read inputs from {path}: {e}") from e
    count = len({k.split(".", 1)[0] for k in arrays})
    items = []
    for i in range(count):
        try:
            items.append(
                SynthInput(
                    prompt_phones=arrays[f"{i}.prompt_phones"],
                    text=arrays[f"{i}.text"],
                    prompt_codes=arrays[f"{i}.prompt_codes"],
                    ref_spec=arrays[f"{i}.ref_spec"],
                    bert=arrays.get(f"{i}.bert"),
                    ref_sv=arrays.get(f"{i}.ref_sv"),
                )
            )
        except KeyError as e:
            raise DataError(f"{path}: item {i} lacks {e}; expected the layout save_inputs writes") from e
    return items


__all__ = ["BERT_DIM", "SynthInput", "load_inputs", "parse_phones", "save_inputs"]
