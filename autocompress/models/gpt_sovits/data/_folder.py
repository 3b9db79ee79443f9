"""Reader of an upstream GPT-SoVITS experiment folder (``logs/<exp_name>/``).

Layout (one item per ``<name>``, the basename of the audio file including its extension):

| path | content |
|---|---|
| ``2-name2text.txt`` | ``name \\t phones (space-separated) \\t word2ph \\t norm_text`` per line |
| ``3-bert/<name>.pt`` | optional ``[1024, n_phones]`` BERT features (missing = zeros) |
| ``4-cnhubert/<name>.pt`` | ``[1, 768, T50]`` HuBERT features at 50 Hz |
| ``5-wav32k/<name>`` | mono 32 kHz audio (int16 WAV upstream; any soundfile format is read) |
| ``6-name2semantic.tsv`` | header ``item_name\\tsemantic_audio``, then ``name \\t codes`` (0..1023) |
| ``7-sv_cn/<name>.pt`` | ``[1, 20480]`` speaker-verification embedding (v2Pro/v2ProPlus only) |

Items are the names in ``2-name2text.txt`` that also have a HuBERT file and an audio file
(and an SV file for Pro), as upstream takes them; names left out are recorded in
:attr:`ExperimentFolder.dropped`. A name matches its files in either Unicode form (NFC or
NFD), which a copy through macOS may have changed. Everything read is validated when the folder
is opened, and the first missing or malformed file or line raises a :class:`DataError` naming it.
"""

from __future__ import annotations

import logging
import math
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.config import SOVITS_VERSIONS
from autocompress.models.gpt_sovits.text import phones_to_ids

log = logging.getLogger(__name__)

NAME2TEXT = "2-name2text.txt"
BERT_DIR = "3-bert"
HUBERT_DIR = "4-cnhubert"
WAV_DIR = "5-wav32k"
SEMANTIC = "6-name2semantic.tsv"
SV_DIR = "7-sv_cn"
SEMANTIC_HEADER = "item_name\tsemantic_audio"

SAMPLE_RATE = 32000  # every file in 5-wav32k
HOP = 640  # spectrogram hop at 32 kHz: one 50 Hz HuBERT frame, half a 25 Hz code
SSL_DIM = 768  # HuBERT feature width
BERT_DIM = 1024  # chinese-roberta-wwm-ext-large hidden size
SV_DIM = 20480  # ERes2NetV2 pooled feature width
CODEBOOK_SIZE = 1024  # semantic codes are 0..1023
# A Mandarin final with its tone (a1, ang4, i01, E2, En5): only upstream's Chinese G2P writes
# one. English stress digits are 0-2 on capitals, Cantonese finals start with "Y", Japanese
# and Korean symbols carry no digit.
MANDARIN_FINAL = re.compile(r"(?:[a-z][a-z0-9]*|En?)[1-5]")


@dataclass(frozen=True)
class ExperimentItem:
    """One utterance of an experiment folder: its text and where its tensors live.

    Tensors are loaded on demand with the ``load_*`` methods (always float32 on the CPU).
    """

    name: str
    phones: tuple[str, ...]
    word2ph: str  # field 3 of 2-name2text.txt as written (a Python list repr or "None")
    norm_text: str
    wav_path: Path
    n_samples: int  # audio length at 32 kHz
    hubert_path: Path
    hubert_frames: int | None  # T50; None when the folder was opened with check_tensors=False
    bert_path: Path | None = None  # None: the BERT features are zeros
    codes: tuple[int, ...] | None = None  # None: the item is not in 6-name2semantic.tsv
    sv_path: Path | None = None  # Pro only

    @property
    def duration_s(self) -> float:
        return self.n_samples / SAMPLE_RATE

    @property
    def n_phones(self) -> int:
        return len(self.phones)

    def load_wav(self) -> torch.Tensor:
        """The audio as float32 in [-1, 1] (int16 / 32768), shaped ``[N]``."""
        try:
            data, rate = soundfile.read(str(self.wav_path), dtype="float32", always_2d=False)
        except (RuntimeError, OSError, soundfile.LibsndfileError) as e:
            raise DataError(f"{self.wav_path}: cannot be read as audio ({e})") from e
        if rate != SAMPLE_RATE or data.ndim != 1:
            raise DataError(
                f"{self.wav_path}: expected mono {SAMPLE_RATE} Hz audio, got {rate} Hz with shape {data.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(data))

    def load_hubert(self) -> torch.Tensor:
        """HuBERT features ``[1, 768, T50]`` as float32."""
        t = load_tensor(self.hubert_path)
        _check_shape(self.hubert_path, t, (1, SSL_DIM, self.hubert_frames))  # None: any T
        return _finite_float(self.hubert_path, t)

    def load_bert(self) -> torch.Tensor:
        """BERT features ``[1024, n_phones]`` as float32; zeros when the item has none."""
        if self.bert_path is None:
            return torch.zeros(BERT_DIM, self.n_phones)
        t = load_tensor(self.bert_path)
        _check_shape(self.bert_path, t, (BERT_DIM, self.n_phones))
        return _finite_float(self.bert_path, t)

    def load_sv(self) -> torch.Tensor:
        """Speaker-verification embedding ``[1, 20480]`` as float32 (Pro folders only)."""
        if self.sv_path is None:
            raise DataError(f"item {self.name!r} has no {SV_DIR}/{self.name}.pt; only v2Pro/v2ProPlus folders carry one")
        t = load_tensor(self.sv_path)
        _check_shape(self.sv_path, t, (1, SV_DIM))
        return _finite_float(self.sv_path, t)


class ExperimentFolder:
    """An upstream experiment folder, opened and validated.

    Args:
        path: the folder (``logs/<exp_name>``).
        version: ``v1``, ``v2``, ``v2Pro`` or ``v2ProPlus``; picks the symbol table and
            whether ``7-sv_cn`` is required.
        strict: raise when a name of ``2-name2text.txt`` lacks its HuBERT, audio (or SV)
            file, instead of leaving it out as upstream does.
        check_tensors: open every ``.pt`` (memory-mapped) to check its type and shape.

    Raises:
        DataError: naming the first missing or malformed folder, file or line.
    """

    def __init__(
        self, path: str | Path, version: str = "v2", strict: bool = False, check_tensors: bool = True
    ) -> None:
        self.path = Path(path)
        if version not in SOVITS_VERSIONS:
            raise DataError(f"unknown version {version!r}; expected one of {SOVITS_VERSIONS}")
        self.version = version
        if not self.path.is_dir():
            raise DataError(f"experiment folder {self.path} does not exist or is not a folder")
        required = [NAME2TEXT, HUBERT_DIR, WAV_DIR] + ([SV_DIR] if self.is_pro else [])
        for part in required:
            _check_part(self.path, part, required)

        texts, bad_lines = _read_name2text(self.path / NAME2TEXT, version, strict)
        has_semantic = (self.path / SEMANTIC).exists()
        if not has_semantic:
            _warn_unmerged_semantic(self.path)
        codes, bad_codes = _read_semantic(self.path / SEMANTIC, strict) if has_semantic else ({}, {})
        bert_dir = self.path / BERT_DIR
        on_disk = {  # folder -> (item name in NFC -> file name); None: the folder is not read
            HUBERT_DIR: _files_by_name(self.path / HUBERT_DIR, ".pt"),
            WAV_DIR: _files_by_name(self.path / WAV_DIR, ""),
            SV_DIR: _files_by_name(self.path / SV_DIR, ".pt") if self.is_pro else None,
            BERT_DIR: _files_by_name(bert_dir, ".pt") if bert_dir.is_dir() else {},
        }

        self.dropped: dict[str, str] = dict(bad_lines)  # name (or "line N") -> why it was left out
        items: list[ExperimentItem] = []
        for name, (phones, word2ph, norm_text) in texts.items():
            key = unicodedata.normalize("NFC", name)
            files = {d: names.get(key) for d, names in on_disk.items() if names is not None}
            missing = [
                f"{d}/{name}{suffix}" for d, suffix in ((HUBERT_DIR, ".pt"), (WAV_DIR, ""), (SV_DIR, ".pt"))
                if d in files and files[d] is None
            ]
            if name in bad_codes:  # a malformed line of 6-name2semantic.tsv: no codes to trust
                self.dropped[name] = bad_codes[name]
                continue
            if missing:
                if strict:
                    raise DataError(f"{self.path / missing[0]}: missing file for item {name!r} of {NAME2TEXT}")
                self.dropped[name] = "missing " + ", ".join(missing)
                continue
            try:
                item = self._open_item(
                    name, phones, word2ph, norm_text,
                    files=files, codes=codes.get(name), check_tensors=check_tensors,
                )
            except DataError as e:
                if strict:
                    raise
                self.dropped[name] = str(e)
                continue
            items.append(item)
        n_listed = len(texts) + len(bad_lines)
        if self.dropped:
            log.warning(
                "%s: %d of %d lines of %s left out (first: %s: %s)",
                self.path, len(self.dropped), n_listed, NAME2TEXT, *next(iter(self.dropped.items())),
            )
        if not items:
            first = next(iter(self.dropped.items()), None)
            raise DataError(
                f"{self.path}: no usable items; {NAME2TEXT} lists {n_listed} lines and none has a valid line, "
                f"{HUBERT_DIR}/<name>.pt and {WAV_DIR}/<name>" + (f" and {SV_DIR}/<name>.pt" if self.is_pro else "")
                + (f" (first: {first[0]}: {first[1]})" if first else "")
            )
        if has_semantic:
            _warn_semantic_mismatch(self.path, codes, texts, items)
        _warn_mandarin_without_bert(self.path, items)
        self.items: list[ExperimentItem] = items
        self._by_name = {item.name: item for item in items}

    # --- access ---
    @property
    def is_pro(self) -> bool:
        return self.version in ("v2Pro", "v2ProPlus")

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):  # noqa: ANN204
        return iter(self.items)

    def __getitem__(self, name: str) -> ExperimentItem:
        if name not in self._by_name:
            raise DataError(f"{self.path}: no item named {name!r}; it has {len(self.items)} items")
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"ExperimentFolder({str(self.path)!r}, version={self.version!r}, items={len(self.items)})"

    def split(self, eval_fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
        """Deterministic train/eval split of the item names.

        The eval set holds ``round(eval_fraction * n)`` items, at least 1 when the fraction
        is positive and at most ``n - 1``. Both lists keep the folder's order.

        Returns:
            ``(train_names, eval_names)``.
        """
        if not 0.0 <= eval_fraction < 1.0:
            raise DataError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
        n = len(self.items)
        n_eval = round(eval_fraction * n)
        if eval_fraction > 0:
            n_eval = max(n_eval, 1)
        n_eval = min(n_eval, n - 1)
        shuffled = sorted(self.names)
        random.Random(seed).shuffle(shuffled)
        held_out = set(shuffled[:n_eval])
        return [m for m in self.names if m not in held_out], [m for m in self.names if m in held_out]

    def summary(self) -> dict[str, Any]:
        """Counts and totals for display (plain JSON-able values)."""
        seconds = [item.duration_s for item in self.items]
        phones = [item.n_phones for item in self.items]
        return {
            "path": str(self.path),
            "version": self.version,
            "items": len(self.items),
            "dropped": len(self.dropped),
            "dropped_names": dict(list(self.dropped.items())[:10]),
            "total_seconds": round(sum(seconds), 3),
            "min_seconds": round(min(seconds), 3),
            "max_seconds": round(max(seconds), 3),
            "phones": sum(phones),
            "with_codes": sum(item.codes is not None for item in self.items),
            "with_bert": sum(item.bert_path is not None for item in self.items),
            "with_sv": sum(item.sv_path is not None for item in self.items),
        }

    # --- validation ---
    def _open_item(
        self,
        name: str,
        phones: tuple[str, ...],
        word2ph: str,
        norm_text: str,
        files: dict[str, str | None],
        codes: tuple[int, ...] | None,
        check_tensors: bool,
    ) -> ExperimentItem:
        """The validated item; ``files`` maps each folder read to the item's file name (or None)."""
        wav_path = self.path / WAV_DIR / str(files[WAV_DIR])
        try:
            info = soundfile.info(str(wav_path))
        except (RuntimeError, OSError, soundfile.LibsndfileError) as e:
            raise DataError(f"{wav_path}: cannot be read as audio ({e}); expected mono {SAMPLE_RATE} Hz") from e
        if info.samplerate != SAMPLE_RATE:
            raise DataError(
                f"{wav_path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE}; "
                "hint: 5-wav32k holds 32 kHz audio (resample when preparing the folder)"
            )
        if info.channels != 1:
            raise DataError(f"{wav_path}: {info.channels} channels, expected mono")
        hubert_path = self.path / HUBERT_DIR / str(files[HUBERT_DIR])
        bert_path = self.path / BERT_DIR / files[BERT_DIR] if files[BERT_DIR] else None
        sv_path = self.path / SV_DIR / str(files[SV_DIR]) if self.is_pro else None
        spec_frames = info.frames // HOP
        hubert_frames = None
        if check_tensors:
            hubert = load_tensor(hubert_path, mmap=True)
            _check_shape(hubert_path, hubert, (1, SSL_DIM, None))
            hubert_frames = int(hubert.shape[2])
            if not 0 <= spec_frames - hubert_frames <= 1:
                raise DataError(
                    f"{hubert_path}: {hubert_frames} HuBERT frames for {info.frames} samples of audio, expected "
                    f"{spec_frames} or {spec_frames - 1} (one per {HOP} samples, floor((N/2 - 400) / 320) + 1); "
                    "hint: the HuBERT file does not belong to this audio"
                )
            if codes is not None and len(codes) not in (hubert_frames // 2, hubert_frames):  # 25 Hz or 50 Hz codes
                raise DataError(
                    f"{self.path / SEMANTIC}: {len(codes)} codes for {name!r}, whose {HUBERT_DIR} file has "
                    f"{hubert_frames} frames and so gives {hubert_frames // 2} (25 Hz codes); hint: {SEMANTIC} "
                    "is stale, extract the codes again from the current HuBERT files"
                )
            if bert_path is not None:
                _check_shape(bert_path, load_tensor(bert_path, mmap=True), (BERT_DIM, len(phones)), "n_phones")
            if sv_path is not None:
                _check_shape(sv_path, load_tensor(sv_path, mmap=True), (1, SV_DIM))
        return ExperimentItem(
            name=name,
            phones=phones,
            word2ph=word2ph,
            norm_text=norm_text,
            wav_path=wav_path,
            n_samples=int(info.frames),
            hubert_path=hubert_path,
            hubert_frames=hubert_frames,
            bert_path=bert_path,
            codes=codes,
            sv_path=sv_path,
        )


# --------------------------------------------------------------------------- file readers


def _check_part(root: Path, part: str, required: list[str]) -> None:
    """Raise a DataError when the required file or folder ``part`` of ``root`` is missing or
    is of the other kind; name upstream's unmerged shards of 2-name2text.txt when they lie there."""
    p = root / part
    is_file = part == NAME2TEXT
    if (p.is_file() if is_file else p.is_dir()):
        return
    kind = "file" if is_file else "folder"
    if p.exists():
        raise DataError(f"{p}: not a {kind}; an experiment folder needs {', '.join(required)}")
    shards = _shards(root, NAME2TEXT)
    if is_file and shards:
        raise DataError(
            f"{p}: missing file, but the shards {', '.join(shards)} are there; hint: GPT-SoVITS's WebUI "
            f"merges them after its text step: join their lines, in order, into {NAME2TEXT}"
        )
    experiments = _experiment_subfolders(root) if is_file else []
    if experiments:
        shown = ", ".join(experiments[:5]) + (f" and {len(experiments) - 5} more" if len(experiments) > 5 else "")
        raise DataError(
            f"{root} is the folder of experiment folders; pass one of them: --data {root / '<exp>'} (found: {shown})"
        )
    if part == SV_DIR:
        raise DataError(
            f"{p}: missing folder; a v2Pro/v2ProPlus voice needs its speaker vectors {SV_DIR}/<name>.pt: run "
            "the speaker-vector step of GPT-SoVITS's data preparation (2-get-sv, run for v2Pro/v2ProPlus) on "
            "this experiment folder"
        )
    raise DataError(f"{p}: missing {kind}; an experiment folder needs {', '.join(required)}")


def _experiment_subfolders(root: Path) -> list[str]:
    """Sorted names of the subfolders of ``root`` that look like experiment folders (they hold
    2-name2text.txt or a 4-cnhubert folder): ``root`` is then upstream's ``logs`` folder."""
    try:
        subfolders = [p for p in root.iterdir() if p.is_dir()]
    except OSError:
        return []
    return sorted(p.name for p in subfolders if (p / NAME2TEXT).is_file() or (p / HUBERT_DIR).is_dir())


def _shards(root: Path, merged: str) -> list[str]:
    """Names of the per-process files (``2-name2text-0.txt``, ...) that upstream's preparation
    writes and its WebUI merges into ``merged``, in shard order."""
    stem, suffix = merged.rsplit(".", 1)
    pattern = re.compile(rf"{re.escape(stem)}-(\d+)\.{re.escape(suffix)}")
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if (m := pattern.fullmatch(p.name))]
    return [name for _, name in sorted(found)]


def _warn_unmerged_semantic(root: Path) -> None:
    """Log the shards of 6-name2semantic.tsv that lie in a folder without the merged file."""
    shards = _shards(root, SEMANTIC)
    if shards:
        log.warning(
            "%s: no %s, but the shards %s are there, so no item has codes; hint: GPT-SoVITS's WebUI "
            "merges them after its semantic step: write the line %r, then their lines, into %s",
            root, SEMANTIC, ", ".join(shards), SEMANTIC_HEADER, SEMANTIC,
        )


def load_tensor(path: Path, mmap: bool = False) -> torch.Tensor:
    """Load one tensor from a ``.pt`` file with ``torch.load(weights_only=True)``.

    No globals beyond torch's own tensor rebuild functions are allowed, so a file holding
    any other object is refused without being run.

    Raises:
        DataError: the file cannot be read, or holds something other than a tensor.
    """
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as e:  # torch raises several unrelated types for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot be loaded as a tensor file ({first[:200]})") from e
    if not isinstance(obj, torch.Tensor):
        raise DataError(f"{path}: expected a tensor, got {type(obj).__name__}")
    return obj


def _check_shape(
    path: Path, t: torch.Tensor, expected: tuple[int | None, ...], last_name: str | None = None
) -> None:
    ok = t.dim() == len(expected) and all(e is None or s == e for s, e in zip(t.shape, expected))
    if not ok:
        shown = ", ".join("T" if e is None else str(e) for e in expected)
        hint = f" (last axis = {last_name})" if last_name else ""
        raise DataError(f"{path}: tensor of shape {list(t.shape)}, expected [{shown}]{hint}")
    if not t.is_floating_point():
        raise DataError(f"{path}: tensor of dtype {t.dtype}, expected a float tensor")


def _finite_float(path: Path, t: torch.Tensor) -> torch.Tensor:
    t = t.float()
    if not torch.isfinite(t).all():
        raise DataError(f"{path}: tensor holds NaN or inf values; hint: redo this item in fp32")
    return t


def _files_by_name(folder: Path, suffix: str) -> dict[str, str]:
    """Item name -> file name, for the files of ``folder`` whose name is the item's plus ``suffix``.

    Item names are keyed in Unicode NFC: a folder copied through macOS, or zipped there, may hold
    the decomposed (NFD) form of the names that 2-name2text.txt spells composed, or the reverse.
    A file named exactly in NFC wins over another form of the same name.
    """
    out: dict[str, str] = {}
    for p in folder.iterdir():
        if p.is_file() and p.name.endswith(suffix):
            stem = p.name[: len(p.name) - len(suffix)]
            key = unicodedata.normalize("NFC", stem)
            if key == stem or key not in out:
                out[key] = p.name
    return out


def _lines(path: Path) -> list[str]:
    """The lines of a text file as upstream's readers see them: CRLF and CR end a line, and so
    does LF, but no other character (``str.splitlines`` would also split at U+2028, form feed
    and the like, which a norm_text may hold)."""
    try:  # utf-8-sig: a byte-order mark left by a Windows editor is not part of the first name
        return path.read_text(encoding="utf-8-sig").split("\n")  # read_text turns CRLF and CR into LF
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({e})") from e


def _read_name2text(
    path: Path, version: str, strict: bool = True
) -> tuple[dict[str, tuple[tuple[str, ...], str, str]], dict[str, str]]:
    """``(name -> (phones, word2ph, norm_text), left out -> why)``; every line is checked.

    A malformed line (field count, empty phones, a symbol the version lacks) raises when
    ``strict``; otherwise it is left out, as upstream's trainers skip it. A name repeated on an
    identical line is read once (:func:`_repeated`); on a different line it always raises: which
    of the two is meant cannot be told.
    """
    out: dict[str, tuple[tuple[str, ...], str, str]] = {}
    bad: dict[str, str] = {}
    seen: dict[str, str] = {}  # name -> its first line
    repeats: list[str] = []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        name = fields[0]
        if name and _repeated(path, lineno, name, line, seen, repeats):
            continue
        try:
            phones, word2ph, norm_text = _check_name2text_line(fields, version)
        except DataError as e:
            if strict:
                raise DataError(f"{path}:{lineno}: {e}") from e
            bad[name or f"line {lineno}"] = f"{path.name}:{lineno}: {e}"
            continue
        out[name] = (phones, word2ph, norm_text)
    if not out and not bad:
        raise DataError(f"{path}: no items (the file is empty)")
    _warn_repeats(path, repeats)
    return out, bad


def _repeated(path: Path, lineno: int, name: str, line: str, seen: dict[str, str], repeats: list[str]) -> bool:
    """Whether ``line`` repeats an earlier line of ``name`` word for word (then it is skipped and
    noted in ``repeats``, as upstream reads a repeated item once); raises when it says otherwise."""
    if name not in seen:
        seen[name] = line
        return False
    if seen[name] != line:  # never silently pick one of two different lines
        raise DataError(
            f"{path}:{lineno}: name {name!r} appears twice, with different contents; hint: upstream names an "
            "item by its audio file's basename, so two source files of that name overwrote each other's "
            "features: rename one and prepare the folder again"
        )
    repeats.append(name)
    return True


def _warn_repeats(path: Path, repeats: list[str]) -> None:
    if repeats:
        log.warning("%s: %d line(s) repeat an earlier line word for word (first: %s); each item is read once",
                    path, len(repeats), repeats[0])


def _check_name2text_line(fields: list[str], version: str) -> tuple[tuple[str, ...], str, str]:
    if len(fields) != 4:
        raise DataError(f"{len(fields)} tab-separated fields, expected 4 (name, phones, word2ph, norm_text)")
    name, phone_field, word2ph, norm_text = fields
    phones = tuple(phone_field.split())
    if not name or not phones:
        raise DataError(f"empty {'name' if not name else 'phones'} field")
    phones_to_ids(phones, version)  # a symbol the version's table lacks
    return phones, word2ph, norm_text


def _warn_semantic_mismatch(
    path: Path, codes: dict[str, tuple[int, ...]], texts: dict, items: list[ExperimentItem]
) -> None:
    """Log names of 6-name2semantic.tsv and 2-name2text.txt that have no partner in the other file."""
    orphans = [name for name in codes if name not in texts]
    uncoded = [item.name for item in items if item.codes is None]
    if orphans:
        log.warning("%s: %d names of %s are not in %s and are ignored (first: %s)",
                    path, len(orphans), SEMANTIC, NAME2TEXT, orphans[0])
    if uncoded:
        log.warning("%s: %d of %d items have no codes in %s (first: %s); the GPT cannot train on them",
                    path, len(uncoded), len(items), SEMANTIC, uncoded[0])


def _is_mandarin(phones: tuple[str, ...]) -> bool:
    """True when the phones come from upstream's Chinese (zh) G2P: they hold a toned
    Mandarin final. Upstream writes ``3-bert`` features for these items only."""
    return any(MANDARIN_FINAL.fullmatch(p) for p in phones)


def _warn_mandarin_without_bert(path: Path, items: list[ExperimentItem]) -> None:
    """Log the Mandarin items that have no ``3-bert`` file: they are read with zero BERT
    features, where upstream's inference computes them from the text."""
    bare = [item.name for item in items if item.bert_path is None and _is_mandarin(item.phones)]
    if bare:
        log.warning(
            "%s: %d of %d items are Mandarin and have no %s/<name>.pt (first: %s); their BERT features "
            "are read as zeros, unlike upstream's inference; rerun GPT-SoVITS's text preparation "
            "(1-get-text) to write them",
            path, len(bare), len(items), BERT_DIR, bare[0],
        )


def _read_semantic(path: Path, strict: bool = False) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """``name -> codes``, and ``name -> why`` for malformed lines (their items are left out;
    with ``strict``, the first raises). The header is checked, and a name may appear once."""
    lines = _lines(path)
    if lines[0] != SEMANTIC_HEADER:
        got = lines[0][:60] if any(lines) else "an empty file"
        headerless = _semantic_problem(lines[0].split("\t"), "") is None  # the first line is an item's
        hint = "; hint: the header line is missing (upstream's trainer needs it): add it as line 1"
        raise DataError(f"{path}:1: expected the header {SEMANTIC_HEADER!r}, got {got!r}" + (hint if headerless else ""))
    out: dict[str, tuple[int, ...]] = {}
    bad: dict[str, str] = {}
    seen: dict[str, str] = {}
    repeats: list[str] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        name = fields[0]
        if _repeated(path, lineno, name, line, seen, repeats):
            continue
        problem = _semantic_problem(fields, name)
        if problem is None:
            out[name] = tuple(int(c) for c in fields[1].split())
            continue
        if strict:
            raise DataError(f"{path}:{lineno}: {problem}")
        bad[name] = f"{path.name}:{lineno}: {problem}"
    _warn_repeats(path, repeats)
    return out, bad


def _semantic_problem(fields: list[str], name: str) -> str | None:
    """What is wrong with one split line of 6-name2semantic.tsv, or None."""
    if len(fields) != 2:
        return f"{len(fields)} tab-separated fields, expected 2 (name, codes)"
    words = fields[1].split()
    not_int = next((c for c in words if not _is_int(c)), None)
    if not_int is not None:
        return f"code {not_int!r} is not an integer"
    if not words:
        return f"no codes for {name!r}"
    outside = next((int(c) for c in words if not 0 <= int(c) < CODEBOOK_SIZE), None)
    if outside is not None:
        return f"code {outside} outside 0..{CODEBOOK_SIZE - 1}"
    return None


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def hubert_frames_for(n_samples_32k: int) -> int:
    """HuBERT frames (50 Hz) for an audio length at 32 kHz: ``floor((N16 - 400) / 320) + 1``.

    ``N16 = ceil(N / 2)`` is the length after resampling to 16 kHz. Always equals
    ``N // 640`` or one less.
    """
    n16 = math.ceil(n_samples_32k / 2)
    if n16 < 400:
        raise DataError(f"audio of {n_samples_32k} samples is shorter than one HuBERT window (800 at 32 kHz)")
    return (n16 - 400) // 320 + 1
