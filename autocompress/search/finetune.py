"""Fine-tune a compressed student against its teacher for a fixed number of steps.

AdamW over the parameters of the compressed module groups only (the rest stay frozen at the
teacher's values), on the experiment's training items, with the teacher-forced distillation
losses of :mod:`autocompress.search.distill`. Every ``eval_every`` steps (and at step 0 and the
last step) the teacher distance on the held-out items is measured and given to the
:class:`~autocompress.search.abort.AbortRule`, which may stop the trial (``TrialPruned``) or end
fine-tuning early when it has converged. A non-finite loss fails the trial.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
import torch

from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search.abort import AbortRule
from autocompress.search.distill import (
    SOVITS_GROUPS,
    EvalTargets,
    Latents,
    VoiceItem,
    gpt_batch,
    gpt_distill_loss,
    gpt_logits,
    sovits_losses,
    sovits_targets,
    teacher_distance,
    teacher_latents,
    trainable_parameters_,
)
from autocompress.search.space import FinetuneSettings

# Called after every step with (step, total, loss, teacher distance or None).
StepCallback = Callable[[int, int, float, "float | None"], None]


class NonFiniteLoss(FloatingPointError):
    """The fine-tuning loss became NaN or infinite."""


@dataclass
class FinetuneResult:
    """How fine-tuning went."""

    steps_done: int
    curve: list[tuple[int, float]]  # (step, teacher distance)
    distance: dict[str, float]  # per group, at the end
    stopped: str  # "steps" | "converged" | "nothing to train"
    losses: list[float] = field(default_factory=list)

    @property
    def final_distance(self) -> float:
        return float(sum(self.distance.values()))


class TeacherLatentCache:
    """Slice-independent teacher outputs per training item, computed on first use (per study)."""

    def __init__(self, teacher: Voice, max_items: int = 256) -> None:
        self.teacher = teacher
        self.max_items = max_items
        self._cache: dict[str, Latents] = {}

    def get(self, item: VoiceItem) -> Latents:
        hit = self._cache.get(item.name)
        if hit is not None:
            return hit
        lat = teacher_latents(self.teacher, item)
        if len(self._cache) < self.max_items:
            self._cache[item.name] = lat
        return lat


def finetune(
    student: Voice,
    teacher: Voice,
    groups: set[str],
    train_items: Sequence[VoiceItem],
    eval_targets: EvalTargets,
    steps: int,
    settings: FinetuneSettings,
    abort: AbortRule,
    on_step: StepCallback | None = None,
    seed: int = 0,
    latents: TeacherLatentCache | None = None,
    measure: set[str] | None = None,
) -> FinetuneResult:
    """Distil ``student`` towards ``teacher``, training the module ``groups``.

    The teacher distance is measured over ``measure`` (default: ``groups``), so that groups
    that are changed but not trained (a 16-bit cast) still count.

    Raises:
        optuna.TrialPruned: the abort rule gave up on the trial.
        NonFiniteLoss: the loss became NaN or infinite.
    """
    on_step = on_step or (lambda *a: None)
    params = trainable_parameters_(student, groups)
    seg = teacher.sovits.segment_frames
    sovits_groups = groups & set(SOVITS_GROUPS)
    measured_groups = set(groups if measure is None else measure)

    def distance() -> dict[str, float]:
        d = teacher_distance(student, eval_targets, measured_groups)
        bad = [g for g, v in d.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"teacher distance of {', '.join(bad)} is not finite: the student diverged")
        return d

    d0 = distance()
    curve = [(0, float(sum(d0.values())))]
    if not params or steps == 0 or not groups:
        return FinetuneResult(0, curve, d0, "nothing to train")
    abort.check(0, curve[0][1])

    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    latents = latents or TeacherLatentCache(teacher)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    student.gpt.eval()
    student.sovits.eval()  # no dropout: the student matches the teacher deterministically
    losses: list[float] = []
    last = d0
    stopped = "steps"
    step = 0
    for step in range(1, steps + 1):
        batch = [train_items[rng.randrange(len(train_items))] for _ in range(settings.batch_size)]
        loss = torch.zeros(())
        if "gpt" in groups:
            inputs = gpt_batch(batch)
            with torch.no_grad():
                target = gpt_logits(teacher.gpt, inputs)
            loss = loss + gpt_distill_loss(gpt_logits(student.gpt, inputs), target, inputs)
        if sovits_groups:
            parts = []
            for item in batch:
                t = sovits_targets(teacher, item, seg, gen, latents.get(item), need_mel="dec" in sovits_groups)
                parts.append(sum(sovits_losses(student, item, t, sovits_groups).values()))
            loss = loss + torch.stack(parts).mean()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"fine-tune loss is {value} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        losses.append(value)
        dist = None
        if step % settings.eval_every == 0 or step == steps:
            last = distance()
            dist = float(sum(last.values()))
            curve.append((step, dist))
        on_step(step, steps, value, dist)
        if dist is not None:
            verdict = abort.check(step, dist)
            if verdict.action == "prune":
                raise optuna.TrialPruned(verdict.reason)
            if verdict.action == "converged":
                stopped = "converged"
                break
    if curve[-1][0] != step:
        last = distance()
        curve.append((step, float(sum(last.values()))))
    return FinetuneResult(step, curve, last, stopped, losses)


__all__ = ["FinetuneResult", "NonFiniteLoss", "StepCallback", "TeacherLatentCache", "finetune"]
