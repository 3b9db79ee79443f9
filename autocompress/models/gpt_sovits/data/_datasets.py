"""Torch datasets and collates over an experiment folder, for GPT and SoVITS fine-tuning.

Only per-item work lives here: loading, filtering, spectrograms, padding. Upstream's
training-loop habits (repeating small sets to 100 items, bucket samplers, shuffling)
belong to the training loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.config import SoVITSConfig, sovits_preset
from autocompress.models.gpt_sovits.data._folder import (
    BERT_DIM,
    SAMPLE_RATE,
    SEMANTIC,
    ExperimentFolder,
    ExperimentItem,
)
from autocompress.models.gpt_sovits.text import phones_to_ids

CODE_PAD = 1024  # semantic-code padding value: the GPT's EOS id
CODE_RATE_HZ = 25  # semantic codes per second


def _select(folder: ExperimentFolder, names: Sequence[str] | None) -> list[ExperimentItem]:
    if names is None:
        return list(folder.items)
    return [folder[name] for name in names]  # DataError for an unknown name


# --------------------------------------------------------------------------- GPT


class GPTSample(NamedTuple):
    """One GPT training item."""

    name: str
    phone_ids: torch.Tensor  # [N] int64
    bert: torch.Tensor  # [1024, N] float32
    codes: torch.Tensor  # [T] int64, 0..1023


class GPTBatch(NamedTuple):
    """A padded GPT batch; the field order follows upstream's s1 collate."""

    phone_ids: torch.Tensor  # [B, Tx] int64, padded with 0
    phone_lengths: torch.Tensor  # [B] int64
    codes: torch.Tensor  # [B, Ty] int64, right-padded with 1024 (EOS)
    code_lengths: torch.Tensor  # [B] int64
    bert: torch.Tensor  # [B, 1024, Tx] float32, padded with 0 on the same side as phone_ids
    names: tuple[str, ...]
    phone_pad_side: str  # "left" or "right"

    def to(self, device: torch.device | str) -> GPTBatch:
        return self._replace(
            **{k: getattr(self, k).to(device) for k in ("phone_ids", "phone_lengths", "codes", "code_lengths", "bert")}
        )


class GPTDataset(Dataset[GPTSample]):
    """GPT (text-to-semantic) items of an experiment folder: phone ids, BERT, codes.

    Items without codes in ``6-name2semantic.tsv`` are left out, and so are items outside
    upstream's limits (all parameters): more than ``max_codes`` codes (54 s at 25 Hz), more
    than ``max_phones`` phones, or a speaking rate (phones per second of codes) outside
    ``[min_phones_per_s, max_phones_per_s]``. What was left out and why is in
    :attr:`dropped`.

    Args:
        folder: the experiment folder.
        names: item names to use (for example one side of :meth:`ExperimentFolder.split`);
            None means all. An explicitly named item without codes is an error.

    Raises:
        DataError: an unknown name, a named item without codes, or no item left.
    """

    def __init__(
        self,
        folder: ExperimentFolder,
        names: Sequence[str] | None = None,
        max_codes: int = 1350,
        max_phones: int = 540,
        min_phones_per_s: float = 3.0,
        max_phones_per_s: float = 25.0,
    ) -> None:
        self.folder = folder
        self.dropped: dict[str, str] = {}
        self.items: list[ExperimentItem] = []
        for item in _select(folder, names):
            if item.codes is None:
                if names is not None:
                    raise DataError(
                        f"{folder.path / SEMANTIC}: item {item.name!r} has no codes; hint: run the "
                        "semantic extraction for it or leave it out of names"
                    )
                self.dropped[item.name] = "no codes"
                continue
            reason = _gpt_filter_reason(
                item, max_codes, max_phones, min_phones_per_s, max_phones_per_s
            )
            if reason:
                self.dropped[item.name] = reason
            else:
                self.items.append(item)
        if not self.items:
            raise DataError(
                f"{folder.path}: no GPT items left of {len(folder.items)} "
                f"({len(self.dropped)} left out; first: {next(iter(self.dropped.items()), ('-', '-'))}); "
                f"hint: {SEMANTIC} must list codes for the items"
            )
        self._ids = [torch.tensor(phones_to_ids(item.phones, folder.version), dtype=torch.long) for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> GPTSample:
        item = self.items[index]
        return GPTSample(
            name=item.name,
            phone_ids=self._ids[index],
            bert=item.load_bert(),
            codes=torch.tensor(item.codes or (), dtype=torch.long),  # never empty: see __init__
        )


def _gpt_filter_reason(
    item: ExperimentItem, max_codes: int, max_phones: int, min_pps: float, max_pps: float
) -> str | None:
    n_codes, n_phones = len(item.codes or ()), item.n_phones
    if n_codes > max_codes:
        return f"{n_codes} codes > max_codes {max_codes}"
    if n_phones > max_phones:
        return f"{n_phones} phones > max_phones {max_phones}"
    pps = n_phones / (n_codes / CODE_RATE_HZ)
    if not min_pps <= pps <= max_pps:
        return f"{pps:.1f} phones per second outside [{min_pps}, {max_pps}]"
    return None


def gpt_collate(samples: Sequence[GPTSample], phone_pad_side: str = "left") -> GPTBatch:
    """Pad GPT samples into a batch (kept in the given order).

    Args:
        samples: items from :class:`GPTDataset`.
        phone_pad_side: ``"left"`` puts phones and BERT at the end of the padded axis, which
            matches the GPT's left-padding mask (the sane default); ``"right"`` is upstream's
            collate, which its model then masks wrongly (spec §5.5).

    Returns:
        Phones and BERT padded with 0, codes right-padded with 1024.
    """
    if phone_pad_side not in ("left", "right"):
        raise DataError(f"phone_pad_side must be 'left' or 'right', got {phone_pad_side!r}")
    if not samples:
        raise DataError("gpt_collate got an empty batch")
    b = len(samples)
    phone_lengths = torch.tensor([len(s.phone_ids) for s in samples], dtype=torch.long)
    code_lengths = torch.tensor([len(s.codes) for s in samples], dtype=torch.long)
    tx, ty = int(phone_lengths.max()), int(code_lengths.max())
    phone_ids = torch.zeros(b, tx, dtype=torch.long)  # [B, Tx]
    bert = torch.zeros(b, BERT_DIM, tx)  # [B, 1024, Tx]
    codes = torch.full((b, ty), CODE_PAD, dtype=torch.long)  # [B, Ty]
    for i, s in enumerate(samples):
        n = len(s.phone_ids)
        cols = slice(tx - n, tx) if phone_pad_side == "left" else slice(0, n)
        phone_ids[i, cols] = s.phone_ids
        bert[i, :, cols] = s.bert
        codes[i, : len(s.codes)] = s.codes
    return GPTBatch(phone_ids, phone_lengths, codes, code_lengths, bert, tuple(s.name for s in samples), phone_pad_side)


def gpt_collate_fn(phone_pad_side: str = "left") -> Callable[[Sequence[GPTSample]], GPTBatch]:
    """A picklable ``collate_fn`` for a DataLoader with the given padding side."""
    if phone_pad_side not in ("left", "right"):
        raise DataError(f"phone_pad_side must be 'left' or 'right', got {phone_pad_side!r}")
    return functools.partial(gpt_collate, phone_pad_side=phone_pad_side)


# --------------------------------------------------------------------------- SoVITS


class SoVITSSample(NamedTuple):
    """One SoVITS training item."""

    name: str
    ssl: torch.Tensor  # [768, T] float32, T == spec frames (after the 1-frame replicate pad)
    spec: torch.Tensor  # [1025, T] float32 linear magnitudes
    wav: torch.Tensor  # [1, N] float32 in [-1, 1]
    text: torch.Tensor  # [P] int64 phone ids
    sv: torch.Tensor | None  # [20480] float32 (Pro) or None


class SoVITSBatch(NamedTuple):
    """A padded SoVITS batch, sorted by spectrogram length (longest first).

    The field order follows upstream's ``TextAudioSpeakerCollate``.
    """

    ssl: torch.Tensor  # [B, 768, Ts] with Ts = 2 * (max ssl length // 2 + 1)
    ssl_lengths: torch.Tensor  # [B]
    spec: torch.Tensor  # [B, 1025, Tf] with Tf = 2 * (max spec length // 2 + 1)
    spec_lengths: torch.Tensor  # [B]
    wav: torch.Tensor  # [B, 1, max N]
    wav_lengths: torch.Tensor  # [B]
    text: torch.Tensor  # [B, max P] int64
    text_lengths: torch.Tensor  # [B]
    sv: torch.Tensor | None = None  # [B, 20480] (Pro) or None
    names: tuple[str, ...] = ()

    def to(self, device: torch.device | str) -> SoVITSBatch:
        moved = {k: v.to(device) for k, v in self._asdict().items() if isinstance(v, torch.Tensor)}
        return self._replace(**moved)


class SoVITSDataset(Dataset[SoVITSSample]):
    """SoVITS items of an experiment folder: HuBERT features, spectrogram, audio, phones.

    The linear spectrogram is computed from the audio on every access, as upstream does.
    When the HuBERT sequence is one frame shorter than the spectrogram it is right-padded
    by replicating its last frame (upstream's rule). Items outside
    ``(min_seconds, max_seconds)``, or without more spectrogram frames than one training
    slice (``segment_size // hop_length``), are left out and listed in :attr:`dropped`.

    Args:
        folder: the experiment folder.
        names: item names to use; None means all.
        config: sizes of the model to train (spectrogram sizes, symbol count, Pro or not);
            None means the preset of the folder's version.

    Raises:
        DataError: the config does not fit the folder, an unknown name, or no item left.
    """

    def __init__(
        self,
        folder: ExperimentFolder,
        names: Sequence[str] | None = None,
        config: SoVITSConfig | None = None,
        min_seconds: float = 0.6,
        max_seconds: float = 54.0,
    ) -> None:
        config = config or sovits_preset(folder.version)
        if config.sampling_rate != SAMPLE_RATE:
            raise DataError(f"config sampling_rate {config.sampling_rate}, but experiment audio is {SAMPLE_RATE} Hz")
        if config.is_pro and not folder.is_pro:
            raise DataError(
                f"a {config.version} model needs speaker-verification embeddings, but {folder.path} was opened "
                f"as {folder.version}; hint: open it with version={config.version!r} (needs 7-sv_cn)"
            )
        self.folder = folder
        self.config = config
        self.dropped: dict[str, str] = {}
        self.items: list[ExperimentItem] = []
        self._ids: list[torch.Tensor] = []
        min_frames = config.segment_size // config.hop_length + 1
        for item in _select(folder, names):
            ids = phones_to_ids(item.phones, folder.version)
            if max(ids) >= config.n_symbols:
                raise DataError(
                    f"item {item.name!r}: phone id {max(ids)} does not fit the model's {config.n_symbols} symbols"
                )
            frames = item.n_samples // config.hop_length
            if not min_seconds < item.duration_s < max_seconds:
                self.dropped[item.name] = f"{item.duration_s:.2f} s outside ({min_seconds}, {max_seconds})"
            elif frames < min_frames:
                self.dropped[item.name] = f"{frames} frames, fewer than one training slice + 1 ({min_frames})"
            else:
                self.items.append(item)
                self._ids.append(torch.tensor(ids, dtype=torch.long))
        if not self.items:
            raise DataError(
                f"{folder.path}: no SoVITS items left of {len(folder.items)} "
                f"(first left out: {next(iter(self.dropped.items()), ('-', '-'))})"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> SoVITSSample:
        from autocompress.models.gpt_sovits.audio import spectrogram_raw

        item, cfg = self.items[index], self.config
        wav = item.load_wav()  # [N]
        spec = spectrogram_raw(
            wav.unsqueeze(0), n_fft=cfg.filter_length, hop_length=cfg.hop_length, win_length=cfg.win_length
        )[0]  # [1025, F]
        ssl = item.load_hubert()  # [1, 768, T]
        if ssl.shape[-1] != spec.shape[-1]:
            ssl = F.pad(ssl, (0, 1), mode="replicate")  # upstream: one frame, whatever the gap
        if ssl.shape[-1] != spec.shape[-1]:
            raise DataError(
                f"{item.hubert_path}: {ssl.shape[-1]} HuBERT frames (after padding) for {spec.shape[-1]} "
                "spectrogram frames; hint: the HuBERT file does not belong to this audio"
            )
        sv = item.load_sv()[0] if self.folder.is_pro and cfg.is_pro else None
        return SoVITSSample(item.name, ssl[0], spec, wav.unsqueeze(0), self._ids[index], sv)


def _even_pad_length(max_len: int) -> int:
    """Upstream's padded length: always even and at least max_len + 1."""
    return 2 * (max_len // 2 + 1)


def sovits_collate(samples: Sequence[SoVITSSample]) -> SoVITSBatch:
    """Sort SoVITS samples by spectrogram length (longest first) and zero-pad them.

    HuBERT features and spectrograms are padded to ``2 * (max // 2 + 1)`` frames (each to
    its own maximum), audio and phones to their maximum.
    """
    if not samples:
        raise DataError("sovits_collate got an empty batch")
    if len({s.sv is None for s in samples}) > 1:
        raise DataError("sovits_collate: some samples carry a speaker-verification embedding and some do not")
    samples = sorted(samples, key=lambda s: s.spec.shape[-1], reverse=True)
    b = len(samples)
    ssl_lengths = torch.tensor([s.ssl.shape[-1] for s in samples], dtype=torch.long)
    spec_lengths = torch.tensor([s.spec.shape[-1] for s in samples], dtype=torch.long)
    wav_lengths = torch.tensor([s.wav.shape[-1] for s in samples], dtype=torch.long)
    text_lengths = torch.tensor([len(s.text) for s in samples], dtype=torch.long)
    first = samples[0]
    ssl = torch.zeros(b, first.ssl.shape[0], _even_pad_length(int(ssl_lengths.max())))  # [B, 768, Ts]
    spec = torch.zeros(b, first.spec.shape[0], _even_pad_length(int(spec_lengths.max())))  # [B, 1025, Tf]
    wav = torch.zeros(b, 1, int(wav_lengths.max()))  # [B, 1, N]
    text = torch.zeros(b, int(text_lengths.max()), dtype=torch.long)  # [B, P]
    for i, s in enumerate(samples):
        ssl[i, :, : s.ssl.shape[-1]] = s.ssl
        spec[i, :, : s.spec.shape[-1]] = s.spec
        wav[i, :, : s.wav.shape[-1]] = s.wav
        text[i, : len(s.text)] = s.text
    sv = torch.stack([s.sv for s in samples]) if first.sv is not None else None  # [B, 20480]
    return SoVITSBatch(
        ssl, ssl_lengths, spec, spec_lengths, wav, wav_lengths, text, text_lengths, sv, tuple(s.name for s in samples)
    )
