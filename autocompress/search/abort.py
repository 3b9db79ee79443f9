"""When to give up on a trial during fine-tuning.

Multi-objective Optuna studies cannot use pruners, so the daemon decides itself and raises
``optuna.TrialPruned``. The signal is the student's distance to the teacher, per module group,
on a fixed evaluation batch, checked every ``eval_every`` steps. Each group leaves fine-tuning
with the weights of its own best check (the groups train on separate teacher-forced targets),
so the rule reads each group's best distance so far. The groups' distances are on different
scales (a KL divergence, latent L2s, a weighted mel L1), so they are never summed:

- the trial's **progress** is the mean over its groups of each best distance relative to
  that group's distance before fine-tuning (1.0 at step 0, lower is better, never rising);
- the trial's **standing** is its worst group's best distance relative to the Pareto set's
  distance for that group at the same step (the largest any Pareto trial that trained the
  group had there: the lenient bar). Groups no Pareto trial trained are not compared.

After ``warmup_checks`` checks past step 0 a trial is abandoned when it is **far behind** (its
standing exceeds ``far_behind``) or has **stalled behind** (``patience`` checks without a 1 %
gain in progress over the last check that made one, while its standing is above 1). A trial
that stalls *ahead of* the Pareto set, or without one, has converged; one whose every group
is more than ``diverged`` times its best has diverged. Both stop fine-tuning early.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MIN_GAIN = 0.01  # a check must beat the last improving one by 1 % to count as an improvement

Curve = Sequence[tuple[int, float]]  # [(step, distance)], steps ascending
GroupCurves = Mapping[str, Curve]  # one curve per module group


@dataclass(frozen=True)
class Verdict:
    """What to do after a check: go on, stop fine-tuning and score, or abandon the trial."""

    action: str  # "continue" | "converged" | "prune"
    reason: str = ""


CONTINUE = Verdict("continue")


def distance_at(curve: Curve, step: int) -> float | None:
    """The distance a curve had at ``step`` (its last check at or before it), or None."""
    steps = [s for s, _ in curve]
    i = bisect.bisect_right(steps, step)
    return None if i == 0 else float(curve[i - 1][1])


def progress(distances: Mapping[str, float], start: Mapping[str, float]) -> float:
    """Mean over the groups of each distance relative to its value at ``start`` (1.0 = no change).

    A group that started at zero distance (nothing to recover) counts as 1.0 while it stays
    there, and by its absolute distance once it moves.
    """
    if not distances:
        return 1.0
    ratios = [d / start[g] if start.get(g, 0.0) > 0 else 1.0 + d for g, d in distances.items()]
    return sum(ratios) / len(ratios)


@dataclass
class AbortRule:
    """Decides, check by check, whether one trial's fine-tuning goes on.

    Args:
        reference: per-group distance curves of the current Pareto trials, by trial number.
        patience: checks without improvement before the trial counts as stalled.
        far_behind: multiple of the reference distance beyond which the trial is abandoned.
        warmup_checks: checks after step 0 that never abandon (the first steps are noisy).
        diverged: every group this many times its best distance stops fine-tuning.
    """

    reference: Mapping[int, GroupCurves] = field(default_factory=dict)
    patience: int = 4
    far_behind: float = 3.0
    warmup_checks: int = 2
    diverged: float = 1.5
    _start: dict[str, float] = field(default_factory=dict, init=False)
    _best: dict[str, float] = field(default_factory=dict, init=False)  # each group's best distance so far
    _anchor: float = field(default=1.0, init=False)  # progress at the last check that improved
    _since_gain: int = field(default=0, init=False)
    _checks: int = field(default=0, init=False)

    def start(self, distances: Mapping[str, float]) -> None:
        """Record the distances before fine-tuning (step 0): the scale of the trial's progress."""
        self._start = dict(distances)
        self._best = dict(distances)

    def reference_at(self, group: str, step: int) -> float | None:
        """The Pareto set's distance for ``group`` at ``step``: the largest among its trials, or None."""
        values = [d for curves in self.reference.values() if group in curves
                  if (d := distance_at(curves[group], step)) is not None]  # fmt: skip
        return max(values) if values else None

    def standing(self, step: int, distances: Mapping[str, float]) -> tuple[float, str] | None:
        """The worst ratio of a group's distance to the Pareto set's at ``step``, and that group."""
        ratios = []
        for g, d in distances.items():
            ref = self.reference_at(g, step)
            if ref is not None:
                ratios.append((d / ref if ref > 0 else (1.0 if d <= 0 else float("inf")), g))
        return max(ratios) if ratios else None

    def check(self, step: int, distances: Mapping[str, float]) -> Verdict:
        """Record the per-group distances at ``step`` (after training) and return the verdict."""
        for g, d in distances.items():
            self._best[g] = min(d, self._best.get(g, d))
        best = {g: self._best[g] for g in distances}
        now = progress(best, self._start)
        self._checks += 1
        if now < self._anchor * (1.0 - MIN_GAIN):
            self._anchor = now
            self._since_gain = 0
        else:
            self._since_gain += 1
        if self._checks <= self.warmup_checks:
            return CONTINUE
        where = self.standing(step, best)
        if where is not None and where[0] > self.far_behind:
            ratio, group = where
            return Verdict(
                "prune",
                f"{group}'s teacher distance {best[group]:.4g} at step {step} is {ratio:.3g}x the Pareto "
                f"set's {self.reference_at(group, step):.4g} (more than {self.far_behind:g}x)",
            )
        if distances and all(d > self.diverged * best[g] and d > 0 for g, d in distances.items()):
            return Verdict("converged", f"diverged: every group more than {self.diverged:g}x its best distance")
        if self._since_gain >= self.patience:
            if where is not None and where[0] > 1.0:
                return Verdict(
                    "prune",
                    f"teacher distance stalled at {now:.3g} of its start for {self._since_gain} checks, "
                    f"with {where[1]} {where[0]:.3g}x the Pareto set's at step {step}",
                )
            return Verdict("converged", f"teacher distance stopped improving at {now:.3g} of its start")
        return CONTINUE


__all__ = ["AbortRule", "CONTINUE", "Curve", "GroupCurves", "MIN_GAIN", "Verdict", "distance_at", "progress"]
