"""Teacher-forced distillation of a compressed voice, group by group.

Every compressed module group learns to reproduce the teacher's output *given the teacher's
input*, so the groups train independently and an unchanged group costs nothing:

- ``gpt``: the teacher's next-code distribution (soft targets mixed with the codes while
  training; plain KL for the distance), teacher-forced on the experiment's codes;
- ``enc_p``: the prior mean and log-scale (``m_p``, ``logs_p``) on the item's codes and phones,
  under the teacher's style vector;
- ``flow``: the latent the teacher's reverse flow makes from the teacher's prior mean;
- ``dec``: the log-mel of the waveform the teacher's decoder makes from a slice of that latent;
- ``ref_enc``: the style vector of the item's own reference spectrogram.

The sum over groups is the *teacher distance*: zero for the teacher itself, the training loss,
and (on the held-out items, with targets cached once per study) the signal of the abort rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from autocompress.compress.losses import (
    GPTDistillConfig,
    SoVITSDistillConfig,
    gpt_kd_loss,
    latent_matching_loss,
    mel_l1_loss,
)

from autocompress.models.gpt_sovits.audio import mel_spectrogram, spectrogram_raw
from autocompress.models.gpt_sovits.data import ExperimentFolder, GPTSample, gpt_collate
from autocompress.models.gpt_sovits.text import phones_to_ids
from autocompress.models.gpt_sovits.voice import MODULE_GROUPS, Voice

SOVITS_GROUPS = ("enc_p", "flow", "dec", "ref_enc")
EOS = 1024  # the GPT's end-of-speech code (GPTConfig.eos)
DISTANCE_KD = GPTDistillConfig(temperature=1.0, alpha=1.0)  # the GPT distance: plain KL to the teacher
TRAIN_KD = GPTDistillConfig(temperature=4.0, alpha=1.0)  # the GPT's training loss: softened teacher targets only
SOVITS_WEIGHTS = SoVITSDistillConfig()  # mel and latent weights of the SoVITS terms
MAX_REF_FRAMES = 500  # reference spectrograms are cropped to 10 s (50 frames per second)


@dataclass(frozen=True)
class VoiceItem:
    """One utterance as distillation sees it."""

    name: str
    phones: Tensor  # [N] int64 phone ids
    bert: Tensor  # [1024, N] float32
    codes: Tensor  # [T] int64 semantic codes (25 Hz)
    refer: Tensor  # [1, spec_bins, Tr] the utterance's own linear spectrogram (the reference)
    sv: Tensor | None = None  # [1, 20480] speaker-verification vector of the audio (v2Pro/v2ProPlus only)


def load_items(folder: ExperimentFolder, names: Sequence[str], spec_cfg: Any) -> list[VoiceItem]:
    """Read the named items (those with codes) into memory.

    Args:
        folder: the experiment folder.
        names: items to read, in order; items without semantic codes are skipped.
        spec_cfg: the SoVITS config (spectrogram sizes).
    """
    out = []
    for name in names:
        item = folder[name]
        if not item.codes:
            continue
        wav = item.load_wav()  # [N]
        refer = spectrogram_raw(
            wav[None], n_fft=spec_cfg.filter_length, hop_length=spec_cfg.hop_length,
            win_length=spec_cfg.win_length,
        )[:, :, :MAX_REF_FRAMES]  # [1, bins, Tr]
        out.append(
            VoiceItem(
                name=name,
                phones=torch.tensor(phones_to_ids(item.phones, folder.version), dtype=torch.long),
                bert=item.load_bert(),
                codes=torch.tensor(item.codes, dtype=torch.long),
                refer=refer,
                sv=item.load_sv() if folder.is_pro else None,
            )
        )
    return out


def compressed_groups(plan: Any) -> set[str]:
    """The module groups a plan changes (the ones distillation trains)."""
    return {g for g in MODULE_GROUPS if not plan.group(g).is_identity}


def trainable_parameters_(student: Voice, groups: Iterable[str]) -> list[torch.nn.Parameter]:
    """Freeze every student parameter outside ``groups``; return the rest."""
    groups = set(groups)
    for p in student.gpt.parameters():
        p.requires_grad_(False)
    for p in student.sovits.parameters():
        p.requires_grad_(False)
    params: list[torch.nn.Parameter] = []
    for g in sorted(groups):
        for p in (p for m in student.modules(g) for p in m.parameters()):
            if p.is_floating_point():
                p.requires_grad_(True)
                params.append(p)
    return params


# --------------------------------------------------------------------------- GPT


def gpt_distill_loss(student_logits: Tensor, teacher_logits: Tensor, inputs: tuple[Tensor, ...]) -> Tensor:
    """The GPT's training loss: the teacher's soft targets only (:data:`TRAIN_KD`).

    The experiment's codes are not the teacher's choices (the demo teacher's first choice is
    the data's code at about 0.37 of positions), and a hard-label term pulls the student away
    from the teacher the search measures it against. Demo GPT pruned 20 % at int4, 100 steps
    at lr 1e-4: held-out KL 0.199 -> 0.147 with 30 % hard labels, -> 0.103 without.
    """
    return gpt_kd_loss(student_logits, teacher_logits, inputs[-2], config=TRAIN_KD, mask=inputs[-1])


def gpt_distance(student_logits: Tensor, teacher_logits: Tensor, inputs: tuple[Tensor, ...]) -> Tensor:
    """KL(teacher || student) at temperature 1 over the positions with a target: the GPT's distance."""
    return gpt_kd_loss(student_logits, teacher_logits, inputs[-2], config=DISTANCE_KD, mask=inputs[-1])


def gpt_batch(items: Sequence[VoiceItem]) -> tuple[Tensor, ...]:
    """Right-padded GPT inputs, the targets (codes then EOS) and the mask of real targets.

    Returns:
        ``(phones, phones_len, bert, codes, codes_len, targets [B, Ty + 1], valid [B, Ty + 1])``.
    """
    device = items[0].codes.device
    batch = gpt_collate(
        [GPTSample(it.name, it.phones.cpu(), it.bert.cpu(), it.codes.cpu()) for it in items], phone_pad_side="right"
    ).to(device)
    ty = batch.codes.shape[1]
    t = torch.arange(ty + 1, device=device)[None, :]
    pad = t >= batch.code_lengths[:, None]  # [B, Ty + 1]: EOS from each item's end on
    targets = torch.cat([batch.codes, batch.codes.new_zeros(len(items), 1)], dim=1).masked_fill(pad, EOS)
    valid = t <= batch.code_lengths[:, None]  # the codes and one EOS
    return batch.phone_ids, batch.phone_lengths, batch.bert, batch.codes, batch.code_lengths, targets, valid


def gpt_logits(model: torch.nn.Module, inputs: tuple[Tensor, ...]) -> Tensor:
    phones, phones_len, bert, codes, codes_len = inputs[:5]
    logits, _ = model.forward_train(phones, phones_len, bert, codes, codes_len)  # [B, Ty + 1, V]
    return logits


# --------------------------------------------------------------------------- SoVITS


@dataclass
class SoVITSTargets:
    """The teacher's outputs for one item (all detached)."""

    ge: Tensor  # [1, gin, 1] style vector of the item's reference
    m_p: Tensor  # [1, inter, T] prior mean
    logs_p: Tensor  # [1, inter, T]
    y_mask: Tensor  # [1, 1, T]
    z: Tensor  # [1, inter, T] reverse flow of m_p
    start: int  # first latent frame of the decoder slice
    frames: int  # length of the slice
    mel: Tensor  # [1, n_mels, F] log-mel of the teacher decoder's waveform on the slice

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Latents:
    """The teacher's slice-independent SoVITS outputs for one item (detached)."""

    ge: Tensor  # [1, gin, 1]
    m_p: Tensor  # [1, inter, T]
    logs_p: Tensor  # [1, inter, T]
    y_mask: Tensor  # [1, 1, T]
    z: Tensor  # [1, inter, T]


@torch.no_grad()
def teacher_latents(teacher: Voice, item: VoiceItem) -> Latents:
    """Style vector, prior and reverse-flow latent of the teacher for one item."""
    sv = teacher.sovits
    ge = sv.style(item.refer, item.sv)  # [1, gin, 1]
    m_p, logs_p, y_mask = sv.infer_latent(item.codes[None, None], item.phones[None], ge)
    z = sv.flow(m_p, y_mask, g=ge, reverse=True)
    return Latents(ge, m_p, logs_p, y_mask, z)


@torch.no_grad()
def sovits_targets(
    teacher: Voice,
    item: VoiceItem,
    seg_frames: int,
    generator: torch.Generator | None,
    latents: Latents | None = None,
    need_mel: bool = True,
) -> SoVITSTargets:
    """The teacher's SoVITS targets for an item; the decoder slice is drawn with ``generator``."""
    lat = latents or teacher_latents(teacher, item)
    total = lat.z.shape[-1]
    frames = min(seg_frames, total)
    start = int(torch.randint(0, total - frames + 1, (1,), generator=generator)) if total > frames else 0
    mel = lat.z.new_zeros(0)
    if need_mel:
        wav = teacher.sovits.dec(lat.z[:, :, start : start + frames], g=lat.ge)  # [1, 1, frames * hop]
        mel = _mel(wav, teacher.sovits.config)
    return SoVITSTargets(lat.ge, lat.m_p, lat.logs_p, lat.y_mask, lat.z, start, frames, mel)


def _mel(wav: Tensor, cfg: Any) -> Tensor:
    return mel_spectrogram(
        wav.reshape(1, -1).float(), n_fft=cfg.filter_length, n_mels=cfg.n_mel_channels,
        sampling_rate=cfg.sampling_rate, hop_length=cfg.hop_length, win_length=cfg.win_length,
    )


def sovits_losses(student: Voice, item: VoiceItem, t: SoVITSTargets, groups: set[str]) -> dict[str, Tensor]:
    """Teacher-forced loss of each compressed SoVITS group on one item."""
    sv = student.sovits
    out: dict[str, Tensor] = {}
    w = SOVITS_WEIGHTS
    if "ref_enc" in groups:
        out["ref_enc"] = w.c_latent * latent_matching_loss([sv.style(item.refer, item.sv)], [t.ge])
    if "enc_p" in groups:
        m_p, logs_p, _ = sv.infer_latent(item.codes[None, None], item.phones[None], t.ge)
        out["enc_p"] = w.c_latent * latent_matching_loss([m_p, logs_p], [t.m_p, t.logs_p], t.y_mask)
    if "flow" in groups:
        z = sv.flow(t.m_p, t.y_mask, g=t.ge, reverse=True)
        out["flow"] = w.c_latent * latent_matching_loss([z], [t.z], t.y_mask)
    if "dec" in groups:
        wav = sv.dec(t.z[:, :, t.start : t.start + t.frames], g=t.ge)
        out["dec"] = w.c_mel * mel_l1_loss(_mel(wav, sv.config), t.mel)
    return out


# --------------------------------------------------------------------------- evaluation set


@dataclass
class EvalTargets:
    """The teacher's outputs on the held-out items, computed once per study."""

    items: list[VoiceItem]
    gpt_logits: list[Tensor]  # per item [Ty + 1, V]
    sovits: list[SoVITSTargets]


@torch.no_grad()
def eval_targets(teacher: Voice, items: Sequence[VoiceItem], seg_frames: int, seed: int = 0) -> EvalTargets:
    gen = torch.Generator().manual_seed(seed)
    logits = [gpt_logits(teacher.gpt, gpt_batch([it]))[0] for it in items]
    sovits = [sovits_targets(teacher, it, seg_frames, gen) for it in items]
    return EvalTargets(list(items), logits, sovits)


@torch.no_grad()
def teacher_distance(student: Voice, targets: EvalTargets, groups: set[str]) -> dict[str, float]:
    """Mean per-group distance of the student to the cached teacher outputs on the eval items."""
    totals = {g: 0.0 for g in sorted(groups)}
    n = len(targets.items)
    # The weights hold still during a check: no graph, and each quantized weight rounded once, not per item.
    with torch.no_grad(), parametrize.cached():
        for item, logits, st in zip(targets.items, targets.gpt_logits, targets.sovits):
            if "gpt" in groups:
                inputs = gpt_batch([item])
                totals["gpt"] += float(gpt_distance(gpt_logits(student.gpt, inputs), logits[None], inputs))
            for g, v in sovits_losses(student, item, st, groups & set(SOVITS_GROUPS)).items():
                totals[g] += float(v)
    return {g: v / max(n, 1) for g, v in totals.items()}


__all__ = [
    "EvalTargets",
    "SOVITS_GROUPS",
    "Latents",
    "SoVITSTargets",
    "VoiceItem",
    "compressed_groups",
    "eval_targets",
    "gpt_batch",
    "gpt_distance",
    "gpt_distill_loss",
    "gpt_logits",
    "load_items",
    "sovits_losses",
    "sovits_targets",
    "teacher_latents",
    "teacher_distance",
    "trainable_parameters_",
]
