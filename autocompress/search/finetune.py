"""Fine-tune a compressed student against its teacher for a fixed number of steps.

AdamW over the parameters of the compressed module groups only (the rest stay frozen at the
teacher's values), on the experiment's training items, with the teacher-forced distillation
losses of :mod:`autocompress.search.distill`. The learning rate warms up linearly over the
first 5 % of the steps and then follows a cosine down to a tenth of its peak. Every
``eval_every`` steps (and at step 0 and the last step) the teacher distance of each group on
the held-out items is measured and given to the :class:`~autocompress.search.abort.AbortRule`,
which may stop the trial (``TrialPruned``) or end fine-tuning early. Each group leaves with
the weights of its own best check, which may be the untrained student's: the groups learn
separate teacher-forced targets, and one that starts almost at the teacher (an int8 cast) is
often moved away by the first steps while another still gains. A non-finite loss or gradient
fails the trial. The teacher is frozen and sees each training item the same way at every step,
so its outputs per item are computed once and kept for the search (:class:`TeacherLatentCache`).
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
import torch

from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search.abort import AbortRule, progress
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

# Called after every step with (step, total, loss, progress at a check or None).
StepCallback = Callable[[int, int, float, "float | None"], None]
log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """The fine-tuning loss became NaN or infinite."""


@dataclass
class FinetuneResult:
    """How fine-tuning went."""

    steps_done: int
    curve: list[tuple[int, float]]  # (step, progress: mean distance relative to step 0; 1.0 at step 0)
    distance: dict[str, float]  # per group, at its best check (the weights the student leaves with)
    stopped: str  # "steps" | "converged" | "nothing to train"
    losses: list[float] = field(default_factory=list)
    group_curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # per group (step, distance)
    best_steps: dict[str, int] = field(default_factory=dict)  # per trained group, the check it leaves with

    @property
    def progress(self) -> float:
        """The groups' best distances relative to step 0, averaged (lower is better)."""
        return progress(self.distance, {g: c[0][1] for g, c in self.group_curves.items()})


WARMUP_SHARE = 0.05  # of the steps, with a linearly rising learning rate
FINAL_LR_SHARE = 0.1  # the cosine ends at this share of the peak learning rate


def lr_factor(steps: int) -> Callable[[int], float]:
    """The learning rate's multiplier before optimizer step ``i + 1`` of ``steps``: the peak
    once, at the last warm-up step, and :data:`FINAL_LR_SHARE` at the last step."""
    warm = max(1, round(WARMUP_SHARE * steps))

    def factor(i: int) -> float:
        if i < warm:
            return (i + 1) / warm
        t = min(1.0, (i + 1 - warm) / max(1, steps - warm))  # the cosine starts from the peak step
        return FINAL_LR_SHARE + (1.0 - FINAL_LR_SHARE) * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


CACHE_BUDGET_BYTES = 2 * 1024**3  # teacher outputs kept for fine-tuning, at most (per search process)
CACHE_MEMORY_SHARE = 0.25  # nor more than this share of the memory free when the first one is kept


def free_memory_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on ``device`` (RAM for the CPU), or None where unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def default_cache_budget(device: torch.device) -> int:
    """:data:`CACHE_BUDGET_BYTES`, or :data:`CACHE_MEMORY_SHARE` of the memory free on
    ``device`` where that is less."""
    free = free_memory_bytes(device)
    return CACHE_BUDGET_BYTES if free is None else min(CACHE_BUDGET_BYTES, int(free * CACHE_MEMORY_SHARE))


def latents_bytes(lat: Latents) -> int:
    """Bytes that keeping ``lat`` holds: the storages of its tensors, each counted once."""
    storages = {}
    for t in (lat.ge, lat.m_p, lat.logs_p, lat.y_mask, lat.z):
        s = t.untyped_storage()
        storages[(t.device, s.data_ptr())] = s.nbytes()
    return sum(storages.values())


@torch.no_grad()
def teacher_logits(teacher: Voice, item: VoiceItem) -> torch.Tensor:
    """The teacher GPT's teacher-forced logits for one item alone, ``[Ty + 1, V]`` (detached)."""
    return gpt_logits(teacher.gpt, gpt_batch([item]))[0]


def logits_bytes(logits: torch.Tensor) -> int:
    """Bytes that keeping ``logits`` holds: its storage."""
    return logits.untyped_storage().nbytes()


class TeacherLatentCache:
    """The teacher's outputs per training item (by item name) that do not change from step to
    step: its slice-independent SoVITS outputs and its GPT's teacher-forced logits, each computed
    once and kept for every later step and trial of the search while the kept outputs fit
    ``budget_bytes`` (default: :func:`default_cache_budget` on their device, fixed when the first
    one is kept). An output that does not fit is computed again at each use, with the same
    result; a warning says so once."""

    def __init__(self, teacher: Voice, budget_bytes: int | None = None) -> None:
        self.teacher = teacher
        self.budget_bytes = budget_bytes
        self._given = budget_bytes is not None
        self.kept_bytes = 0
        self._cache: dict[str, Latents] = {}
        self._logits: dict[str, torch.Tensor] = {}
        self.left_out: set[str] = set()  # names of the items with an output that did not fit

    @property
    def kept_items(self) -> int:
        """Training items with an output kept."""
        return len(self._cache.keys() | self._logits.keys())

    def get(self, item: VoiceItem) -> Latents:
        """The teacher's SoVITS latents for ``item``."""
        hit = self._cache.get(item.name)
        if hit is not None:
            return hit
        lat = teacher_latents(self.teacher, item)
        self._keep(self._cache, item.name, lat, latents_bytes(lat), lat.z.device)
        return lat

    def logits(self, item: VoiceItem) -> torch.Tensor:
        """The teacher GPT's teacher-forced logits for ``item`` alone, ``[Ty + 1, V]``."""
        hit = self._logits.get(item.name)
        if hit is not None:
            return hit
        out = teacher_logits(self.teacher, item)
        self._keep(self._logits, item.name, out, logits_bytes(out), out.device)
        return out

    def _keep(self, kept: dict, name: str, value: object, size: int, device: torch.device) -> None:
        if self.budget_bytes is None:
            self.budget_bytes = default_cache_budget(device)
        if self.kept_bytes + size <= self.budget_bytes:
            kept[name] = value
            self.kept_bytes += size
        elif name not in self.left_out:
            if not self.left_out:
                why = "" if self._given else (
                    f", the smaller of {CACHE_BUDGET_BYTES / 2**30:.1f} GiB and {100 * CACHE_MEMORY_SHARE:.0f} % "
                    "of the memory free then"
                )
                log.warning(
                    "teacher output cache full at %d training items (%.1f of its %.1f MiB%s): the teacher runs "
                    "again at each use of the items beyond (same results, slower fine-tuning)",
                    self.kept_items, self.kept_bytes / 2**20, self.budget_bytes / 2**20, why,
                )
            self.left_out.add(name)


def gpt_targets(latents: TeacherLatentCache, batch: Sequence[VoiceItem], valid: torch.Tensor) -> torch.Tensor:
    """The teacher GPT's logits for ``batch`` padded to ``valid``'s ``[B, Ty + 1]`` (zeros beyond
    each item's own positions, which the loss leaves out)."""
    per_item = [latents.logits(item) for item in batch]
    out = per_item[0].new_zeros(*valid.shape, per_item[0].shape[-1])
    for i, t in enumerate(per_item):
        out[i, : t.shape[0]] = t
    return out


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
        NonFiniteLoss: the loss, a gradient or a distance became NaN or infinite.
    """
    on_step = on_step or (lambda *a: None)
    params = trainable_parameters_(student, groups)
    seg = teacher.sovits.segment_frames
    sovits_groups = groups & set(SOVITS_GROUPS)
    measured_groups = set(groups if measure is None else measure)
    student.gpt.eval()
    student.sovits.eval()  # no dropout from the step-0 distance on: the student matches the teacher deterministically

    def distance() -> dict[str, float]:
        d = teacher_distance(student, eval_targets, measured_groups)
        bad = [g for g, v in d.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"teacher distance of {', '.join(bad)} is not finite: the student diverged")
        return d

    d0 = distance()
    group_curves = {g: [(0, v)] for g, v in d0.items()}
    curve = [(0, 1.0)]
    if not params or steps == 0 or not groups:
        return FinetuneResult(0, curve, d0, "nothing to train", group_curves=group_curves)
    abort.start(d0)

    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    latents = TeacherLatentCache(teacher) if latents is None else latents
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(steps))
    losses: list[float] = []
    # each trained group's best check so far, from the untrained student on
    best = {g: _Best(d0[g], 0, _group_params(student, g)) for g in groups if g in d0}
    stopped = "steps"
    step = 0

    def record(step: int) -> dict[str, float]:
        d = distance()
        for g, v in d.items():
            group_curves[g].append((step, v))
            if g in best and v < best[g].distance:
                best[g].update(v, step)
        curve.append((step, progress({g: min(v for _, v in c) for g, c in group_curves.items()}, d0)))
        return d

    for step in range(1, steps + 1):
        batch = [train_items[rng.randrange(len(train_items))] for _ in range(settings.batch_size)]
        loss = torch.zeros(())
        if "gpt" in groups:
            inputs = gpt_batch(batch)
            target = gpt_targets(latents, batch, inputs[-1])
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
        norm = float(torch.nn.utils.clip_grad_norm_(params, settings.grad_clip))
        if not math.isfinite(norm):
            raise NonFiniteLoss(f"fine-tune gradient norm is {norm} at step {step}")
        optimizer.step()
        schedule.step()
        losses.append(value)
        checked = step % settings.eval_every == 0 or step == steps
        latest = record(step) if checked else None
        on_step(step, steps, value, curve[-1][1] if checked else None)
        if latest is not None:
            verdict = abort.check(step, latest)
            if verdict.action == "prune":
                raise optuna.TrialPruned(verdict.reason)
            if verdict.action == "converged":
                stopped = "converged"
                break
    if curve[-1][0] != step:
        record(step)
    for b in best.values():
        b.restore()
    distances = {g: (best[g].distance if g in best else c[-1][1]) for g, c in group_curves.items()}
    return FinetuneResult(step, curve, distances, stopped, losses, group_curves, {g: b.step for g, b in best.items()})


def _group_params(student: Voice, group: str) -> list[torch.Tensor]:
    return [p for m in student.modules(group) for p in m.parameters() if p.requires_grad]


class _Best:
    """One group's best check so far: its distance, its step and a copy of its parameters then."""

    def __init__(self, distance: float, step: int, params: list[torch.Tensor]) -> None:
        self.distance, self.step, self.params = distance, step, params
        self.kept = [p.detach().clone() for p in params]

    def update(self, distance: float, step: int) -> None:
        self.distance, self.step = distance, step
        with torch.no_grad():
            for kept, p in zip(self.kept, self.params):
                kept.copy_(p)

    def restore(self) -> None:
        with torch.no_grad():
            for p, kept in zip(self.params, self.kept):
                p.copy_(kept)


__all__ = [
    "CACHE_BUDGET_BYTES",
    "CACHE_MEMORY_SHARE",
    "FinetuneResult",
    "NonFiniteLoss",
    "StepCallback",
    "TeacherLatentCache",
    "default_cache_budget",
    "finetune",
    "lr_factor",
]
