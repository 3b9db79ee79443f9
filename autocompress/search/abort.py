"""When to give up on a trial during fine-tuning.

Multi-objective Optuna studies cannot use pruners, so the daemon decides itself and raises
``optuna.TrialPruned``. The signal is the student's distance to the teacher on a fixed
evaluation batch, checked every ``eval_every`` steps. A trial is abandoned when, after
``warmup_checks`` checks:

- it is **far behind**: its distance exceeds ``far_behind`` times the Pareto set's distance at
  the same step (the largest distance any Pareto trial had at that step: the lenient bar); or
- it has **stalled behind**: ``patience`` checks in a row without a 1 % improvement on its best,
  while still worse than the Pareto set at that step.

A trial that stalls *ahead of* the Pareto set has converged: fine-tuning stops early and the
trial is scored normally. Without a Pareto reference (the first trials) nothing is abandoned.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MIN_GAIN = 0.01  # a check must beat the best distance by 1 % to count as an improvement

Curve = Sequence[tuple[int, float]]  # [(step, distance)], steps ascending


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


@dataclass
class AbortRule:
    """Decides, check by check, whether one trial's fine-tuning goes on.

    Args:
        reference: curves of the current Pareto trials, by trial number.
        patience: checks without improvement before the trial counts as stalled.
        far_behind: multiple of the reference distance beyond which the trial is abandoned.
        warmup_checks: checks that never abandon (the first steps of fine-tuning are noisy).
    """

    reference: Mapping[int, Curve] = field(default_factory=dict)
    patience: int = 4
    far_behind: float = 3.0
    warmup_checks: int = 2
    _best: float = field(default=float("inf"), init=False)
    _since_best: int = field(default=0, init=False)
    _checks: int = field(default=0, init=False)

    def reference_at(self, step: int) -> float | None:
        """The Pareto set's distance at ``step``: the largest among its trials, or None."""
        values = [d for c in self.reference.values() if (d := distance_at(c, step)) is not None]
        return max(values) if values else None

    def check(self, step: int, distance: float) -> Verdict:
        """Record the distance at ``step`` and return the verdict."""
        self._checks += 1
        if distance < self._best * (1.0 - MIN_GAIN):
            self._best = distance
            self._since_best = 0
        else:
            self._best = min(self._best, distance)
            self._since_best += 1
        if self._checks <= self.warmup_checks:
            return CONTINUE
        ref = self.reference_at(step)
        if ref is not None and distance > self.far_behind * ref:
            return Verdict(
                "prune",
                f"teacher distance {distance:.4g} at step {step} is more than {self.far_behind:g}x "
                f"the Pareto set's {ref:.4g}",
            )
        if self._since_best >= self.patience:
            if ref is not None and distance > ref:
                return Verdict(
                    "prune",
                    f"teacher distance stalled at {self._best:.4g} for {self._since_best} checks, "
                    f"behind the Pareto set's {ref:.4g} at step {step}",
                )
            return Verdict("converged", f"teacher distance stopped improving at {self._best:.4g}")
        return CONTINUE


__all__ = ["AbortRule", "CONTINUE", "Curve", "MIN_GAIN", "Verdict", "distance_at"]
