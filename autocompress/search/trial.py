"""The contract between the daemon and whatever runs one trial (the trial pipeline).

The daemon owns Optuna, the store and the artifacts; a :class:`TrialRunner` turns a plan into
an outcome: compress, fine-tune, score, save. It reports progress through :class:`TrialHooks`,
signals a hopeless trial with ``optuna.TrialPruned`` and any failure by raising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autocompress.compress.plan import CompressionPlan
from autocompress.search.abort import AbortRule
from autocompress.store import MetricLike, Objectives


@dataclass(frozen=True)
class TrialJob:
    """One trial to run."""

    number: int
    plan: CompressionPlan
    baseline: str | None
    steps: int  # fine-tune steps
    abort: AbortRule
    seed: int
    student_dir: Path  # where to save the fine-tuned student (checkpoints + plan)
    samples_dir: Path  # scratch folder for audio samples


@dataclass
class TrialHooks:
    """Progress callbacks (all optional)."""

    phase: Callable[[str], None] = lambda name: None
    step: Callable[[int, int, float, float | None], None] = lambda step, total, loss, distance: None


@dataclass(frozen=True)
class TrialOutcome:
    """What a finished trial produced."""

    objectives: Objectives
    metrics: Sequence[MetricLike]
    constraints: dict[str, float]  # name -> value; <= 0 is satisfied
    curve: Sequence[tuple[int, float]] = ()  # [(step, progress: mean teacher distance relative to step 0)]
    group_curves: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)  # per group (step, distance)
    steps_done: int = 0
    samples: Sequence[Path] = ()  # audio files to upload as artifacts
    device_info: dict[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()
    floor_reason: str = ""  # the release floor's one-line decision

    @property
    def feasible(self) -> bool:
        return all(v <= 0.0 for v in self.constraints.values())

    def infeasible_because(self) -> str:
        """Which constraints the trial breaks, in words ("" when feasible)."""
        parts = []
        for name, value in self.constraints.items():
            if value <= 0.0:
                continue
            if name == "quality_floor":
                parts.append(f"release floor ({self.floor_reason})" if self.floor_reason else "release floor")
            else:
                parts.append(f"{name.replace('_', ' ')} exceeded by {value:.0%}")
        return "; ".join(parts)


class TrialRunner(Protocol):
    """Runs trials of one study; built once per search (teacher, data and caches loaded once)."""

    def describe(self) -> dict[str, Any]:
        """Device and environment facts stored with every trial."""
        ...

    def labels(self) -> dict[str, str]:
        """How the objectives were obtained, e.g. ``{"latency_ms": "projected for rtx3060"}``."""
        ...

    def run(self, job: TrialJob, hooks: TrialHooks) -> TrialOutcome:
        """Run one trial.

        Raises:
            optuna.TrialPruned: the abort rule gave up on it (the message says why).
            Exception: anything else fails the trial; the message is its recorded reason.
        """
        ...


__all__ = ["TrialHooks", "TrialJob", "TrialOutcome", "TrialRunner"]
