"""Knowledge-distillation losses for fine-tuning compressed students against their teacher.

GPT: soft targets at temperature T mixed with the hard-label cross entropy,
``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, labels)``
(T = 4, alpha = 0.7 by default; the T^2 keeps the soft term's gradient scale independent of T).

SoVITS: teacher and student share durations (the student decodes the same codes and
phones), so their outputs align frame by frame. The loss sums an L1 distance of log-mel
spectrograms, a feature-matching distance of discriminator feature maps (teacher audio
as the reference), an optional least-squares adversarial term, and latent matching of the
prior (m_p, logs_p) and of the flow output z.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from autocompress.exceptions import ConfigError


# --------------------------------------------------------------------------- GPT


@dataclass(frozen=True)
class GPTDistillConfig:
    """Weights of the GPT distillation loss.

    Attributes:
        temperature: softmax temperature of the soft targets (> 0).
        alpha: weight of the soft (teacher) term; ``1 - alpha`` weighs the hard labels.
    """

    temperature: float = 4.0
    alpha: float = 0.7

    def __post_init__(self) -> None:
        problems = []
        if not self.temperature > 0:
            problems.append(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            problems.append(f"alpha must be in [0, 1], got {self.alpha}")
        if problems:
            raise ConfigError("invalid GPTDistillConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTDistillConfig:
        return cls(**data)


def gpt_kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    config: GPTDistillConfig | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Distillation loss of the T2S GPT, averaged over the positions kept by ``mask``.

    Args:
        student_logits: ``[B, T, V]``.
        teacher_logits: ``[B, T, V]`` (no gradient flows into it).
        targets: hard labels ``[B, T]`` (the codes, EOS at the end, as upstream trains).
        config: temperature and mixing weight (defaults T = 4, alpha = 0.7).
        mask: ``[B, T]`` True where a position counts (default: all).

    Returns:
        A scalar.
    """
    config = config or GPTDistillConfig()
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            "student and teacher logits differ in shape: "
            f"{tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    if mask is not None:  # selected, not multiplied by 0: whatever sits at a padded position stays out
        keep = mask.to(torch.bool)
        student_logits, teacher_logits, targets = student_logits[keep], teacher_logits[keep], targets[keep]
        if not student_logits.shape[0]:
            return student_logits.float().sum()  # no position counts: 0, still part of the graph
    t = config.temperature
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)  # [..., V]
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    p_teacher = log_p_teacher.exp()
    # a token the teacher gives probability 0 (a logit of -inf) adds nothing, not 0 * inf
    kl = torch.where(p_teacher > 0, p_teacher * (log_p_teacher - log_p_student), torch.zeros_like(p_teacher))
    soft = kl.sum(-1) * t * t  # [...]
    hard = F.cross_entropy(student_logits.float().reshape(-1, student_logits.shape[-1]), targets.reshape(-1),
                           reduction="none").reshape(soft.shape)  # fmt: skip
    per_position = config.alpha * soft + (1.0 - config.alpha) * hard
    return per_position.mean()


# --------------------------------------------------------------------------- SoVITS


@dataclass(frozen=True)
class SoVITSDistillConfig:
    """Weights of the SoVITS distillation loss (0 disables a term).

    Attributes:
        c_mel: L1 of student vs teacher log-mel spectrograms (upstream's c_mel is 45).
        c_fm: feature matching (upstream weighs it 2).
        c_adv: least-squares adversarial term; used only with ``adversarial=True``.
        c_latent: L1 of the prior mean / log-scale and of the flow output.
        adversarial: include the adversarial term (needs a discriminator).
    """

    c_mel: float = 45.0
    c_fm: float = 2.0
    c_adv: float = 1.0
    c_latent: float = 1.0
    adversarial: bool = False

    def __post_init__(self) -> None:
        bad = [k for k, v in asdict(self).items() if k != "adversarial" and not v >= 0]
        if bad:
            raise ConfigError(f"invalid SoVITSDistillConfig: weights {bad} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SoVITSDistillConfig:
        return cls(**data)


def mel_l1_loss(student_mel: Tensor, teacher_mel: Tensor) -> Tensor:
    """Mean absolute difference of two log-mel spectrograms ``[B, n_mels, T]``."""
    frames = min(student_mel.shape[-1], teacher_mel.shape[-1])
    return F.l1_loss(student_mel[..., :frames], teacher_mel[..., :frames].detach())


def feature_matching_loss(
    fmaps_reference: Sequence[Sequence[Tensor]], fmaps_student: Sequence[Sequence[Tensor]]
) -> Tensor:
    """Sum over discriminators and layers of mean |f_ref - f_student| (reference detached)."""
    total = torch.zeros(())
    for ref_layers, student_layers in zip(fmaps_reference, fmaps_student):
        for ref, got in zip(ref_layers, student_layers):
            total = total + torch.mean(torch.abs(ref.detach().float() - got.float()))
    return total


def generator_adversarial_loss(scores_student: Sequence[Tensor]) -> Tensor:
    """Least-squares GAN generator loss: sum of mean (1 - D(student))^2."""
    total = torch.zeros(())
    for score in scores_student:
        total = total + torch.mean((1 - score.float()) ** 2)
    return total


def discriminator_loss(scores_reference: Sequence[Tensor], scores_student: Sequence[Tensor]) -> Tensor:
    """Least-squares GAN discriminator loss: mean (1 - D(ref))^2 + mean D(student)^2, summed."""
    total = torch.zeros(())
    for ref, got in zip(scores_reference, scores_student):
        total = total + torch.mean((1 - ref.float()) ** 2) + torch.mean(got.float() ** 2)
    return total


def latent_matching_loss(
    student: Sequence[Tensor], teacher: Sequence[Tensor], mask: Tensor | None = None
) -> Tensor:
    """Masked L1 between matching latents (for example (m_p, logs_p, z)), each ``[B, C, T]``.

    Args:
        student, teacher: the same number of tensors, pairwise equal in shape.
        mask: ``[B, 1, T]`` float, 1 on valid frames (default: all).
    """
    if len(student) != len(teacher):
        raise ConfigError(
            f"latent matching needs pairs; got {len(student)} student and {len(teacher)} teacher tensors"
        )
    total = torch.zeros(())
    for s, t in zip(student, teacher):
        if s.shape != t.shape:
            raise ConfigError(f"latent shapes differ: student {tuple(s.shape)} vs teacher {tuple(t.shape)}")
        diff = (s.float() - t.detach().float()).abs()
        if mask is None:
            total = total + diff.mean()
        else:
            m = mask.float().expand_as(diff)
            total = total + (diff * m).sum() / m.sum().clamp_min(1.0)
    return total


@dataclass
class SoVITSDistillLoss:
    """The SoVITS distillation loss: total and its terms (for logging)."""

    total: Tensor
    mel: Tensor
    feature_matching: Tensor
    adversarial: Tensor
    latent: Tensor


def sovits_kd_loss(
    student_wav: Tensor,
    teacher_wav: Tensor,
    config: SoVITSDistillConfig | None = None,
    mel_fn: Callable[[Tensor], Tensor] | None = None,
    discriminator: Callable[[Tensor, Tensor], tuple[Any, Any, Any, Any]] | None = None,
    student_latents: Sequence[Tensor] = (),
    teacher_latents: Sequence[Tensor] = (),
    latent_mask: Tensor | None = None,
) -> SoVITSDistillLoss:
    """Distillation loss of a SoVITS student that decodes the same inputs as its teacher.

    Args:
        student_wav, teacher_wav: ``[B, 1, N]`` waveforms (same N: shared durations).
        config: term weights.
        mel_fn: waveform ``[B, N]`` -> log-mel ``[B, n_mels, T]`` (default: the SoVITS
            32 kHz, 128-band mel of :func:`autocompress.models.gpt_sovits.audio.mel_spectrogram`).
        discriminator: ``D(reference, generated) -> (scores_ref, scores_gen, fmaps_ref,
            fmaps_gen)`` (upstream's MultiPeriodDiscriminator signature); needed for feature
            matching and the adversarial term, skipped when None.
        student_latents, teacher_latents: matching latents such as (m_p, logs_p, z).
        latent_mask: ``[B, 1, T]`` valid frames of the latents.
    """
    config = config or SoVITSDistillConfig()
    if student_wav.shape != teacher_wav.shape:
        raise ConfigError(
            f"student and teacher audio differ in shape {tuple(student_wav.shape)} vs "
            f"{tuple(teacher_wav.shape)}; "
            "decode the same codes and phones with speed 1"
        )
    if mel_fn is None:
        from autocompress.models.gpt_sovits.audio import mel_spectrogram

        mel_fn = mel_spectrogram
    zero = torch.zeros((), device=student_wav.device)
    mel = mel_l1_loss(mel_fn(student_wav.squeeze(1).float()), mel_fn(teacher_wav.squeeze(1).float()))
    fm, adv = zero, zero
    if discriminator is not None and (config.c_fm > 0 or (config.adversarial and config.c_adv > 0)):
        _, scores_gen, fmaps_ref, fmaps_gen = discriminator(teacher_wav.detach(), student_wav)
        fm = feature_matching_loss(fmaps_ref, fmaps_gen)
        if config.adversarial:
            adv = generator_adversarial_loss(scores_gen)
    latent = latent_matching_loss(student_latents, teacher_latents, latent_mask) if student_latents else zero
    total = config.c_mel * mel + config.c_fm * fm + config.c_latent * latent
    if config.adversarial:
        total = total + config.c_adv * adv
    return SoVITSDistillLoss(total=total, mel=mel, feature_matching=fm, adversarial=adv, latent=latent)


__all__ = [
    "GPTDistillConfig",
    "SoVITSDistillConfig",
    "SoVITSDistillLoss",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "gpt_kd_loss",
    "latent_matching_loss",
    "mel_l1_loss",
    "sovits_kd_loss",
]
