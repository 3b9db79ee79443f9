"""Distillation losses: GPT soft/hard mix, SoVITS mel / feature matching / adversarial / latent terms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autocompress.compress import (
    GPTDistillConfig,
    SoVITSDistillConfig,
    discriminator_loss,
    gpt_kd_loss,
    latent_matching_loss,
    sovits_kd_loss,
)
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.config import sovits_tiny
from autocompress.models.gpt_sovits.discriminator import MultiPeriodDiscriminator


def test_gpt_kd_loss_mixes_soft_and_hard_terms() -> None:
    torch.manual_seed(0)
    student = torch.randn(2, 5, 11, requires_grad=True)
    teacher = torch.randn(2, 5, 11)
    targets = torch.randint(0, 11, (2, 5))
    t, alpha = 4.0, 0.7
    log_s, log_t = F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1)
    soft = F.kl_div(log_s, log_t, log_target=True, reduction="none")
    hard = F.cross_entropy(student.transpose(1, 2), targets, reduction="none")
    want = (alpha * t * t * soft.sum(-1) + (1 - alpha) * hard).mean()
    got = gpt_kd_loss(student, teacher, targets)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    got.backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    # alpha = 1: pure soft targets, zero when the student equals the teacher
    same = gpt_kd_loss(teacher, teacher, targets, GPTDistillConfig(alpha=1.0))
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    # a mask keeps only the listed positions
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 0] = True
    one = gpt_kd_loss(student.detach(), teacher, targets, mask=mask)
    want_one = alpha * t * t * soft[0, 0].sum() + (1 - alpha) * hard[0, 0]
    assert float(one) == pytest.approx(float(want_one.detach()), rel=1e-5)
    with pytest.raises(ConfigError, match="alpha must be in"):
        GPTDistillConfig(alpha=1.5)


def test_sovits_kd_loss_terms() -> None:
    torch.manual_seed(1)
    teacher = 0.3 * torch.randn(1, 1, 6400)
    student = (teacher + 0.05 * torch.randn(1, 1, 6400)).requires_grad_()
    latents_t = [torch.randn(1, 8, 10) for _ in range(3)]
    latents_s = [t + 0.1 for t in latents_t]
    d = MultiPeriodDiscriminator(sovits_tiny().replace(mpd_periods=(2, 3)))
    config = SoVITSDistillConfig(adversarial=True)
    loss = sovits_kd_loss(
        student, teacher, config, discriminator=d, student_latents=latents_s, teacher_latents=latents_t
    )
    names = ("mel", "feature_matching", "adversarial", "latent", "total")
    terms = {k: float(getattr(loss, k).detach()) for k in names}
    assert terms["mel"] > 0 and terms["feature_matching"] > 0 and terms["adversarial"] > 0
    assert terms["latent"] == pytest.approx(0.3, rel=1e-4)  # 0.1 per latent, three latents
    want = 45 * terms["mel"] + 2 * terms["feature_matching"] + terms["adversarial"] + terms["latent"]
    assert terms["total"] == pytest.approx(want, rel=1e-5)
    loss.total.backward()
    assert float(student.grad.abs().sum()) > 0
    # identical audio and latents: no mel or latent loss
    zero = sovits_kd_loss(
        teacher, teacher, SoVITSDistillConfig(), student_latents=latents_t, teacher_latents=latents_t
    )
    assert float(zero.mel) == 0 and float(zero.latent) == 0 and float(zero.total) == 0
    with pytest.raises(ConfigError, match="differ in shape"):
        sovits_kd_loss(teacher[..., :100], teacher)


def test_latent_mask_and_discriminator_loss() -> None:
    s, t = torch.ones(1, 2, 4), torch.zeros(1, 2, 4)
    mask = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    s[..., 2:] = 100.0  # masked frames do not count
    assert float(latent_matching_loss([s], [t], mask)) == pytest.approx(1.0)
    real, fake = [torch.ones(2, 3)], [torch.zeros(2, 3)]
    assert float(discriminator_loss(real, fake)) == 0.0


def test_gpt_kd_loss_stays_finite_with_a_banned_teacher_logit_and_garbage_at_padding() -> None:
    """Masking multiplied by 0: a NaN logit at a padded position (0 * NaN) or a teacher logit of
    -inf (probability 0 times an infinite log ratio) made the whole loss, and its gradient, NaN."""
    torch.manual_seed(0)
    student = torch.randn(2, 4, 7)
    teacher = torch.randn(2, 4, 7)
    targets = torch.randint(0, 7, (2, 4))
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[1, 3] = False  # padding
    clean = gpt_kd_loss(student, teacher, targets, mask=mask)
    teacher_banned = teacher.clone()
    teacher_banned[0, 1, 2] = float("-inf")  # a token the teacher never emits there
    student_dirty = student.clone()
    student_dirty[1, 3] = float("nan")  # whatever sits at the padded position
    teacher_banned[1, 3, 0] = float("inf")
    leaf = student_dirty.clone().requires_grad_(True)
    loss = gpt_kd_loss(leaf, teacher_banned, targets, mask=mask)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(leaf.grad).all() and float(leaf.grad[1, 3].abs().sum()) == 0.0
    # the banned token contributes nothing to the soft term: its teacher probability is 0
    t, alpha = 4.0, 0.7
    kept = teacher[0, 1].clone()
    p = F.softmax(torch.cat([kept[:2], kept[3:]]) / t, -1)
    log_s = F.log_softmax(student[0, 1] / t, -1)
    soft = (p * (p.log() - torch.cat([log_s[:2], log_s[3:]]))).sum() * t * t
    only = torch.zeros(2, 4, dtype=torch.bool)
    only[0, 1] = True
    hard = F.cross_entropy(student[0, 1][None], targets[0, 1][None])
    got = gpt_kd_loss(student, teacher_banned, targets, mask=only)
    assert float(got) == pytest.approx(float(alpha * soft + (1 - alpha) * hard), rel=1e-5)
    assert float(gpt_kd_loss(student, teacher, targets, mask=torch.zeros(2, 4, dtype=torch.bool))) == 0.0
    assert torch.isfinite(clean)
