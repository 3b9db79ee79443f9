"""What the daemon tells whoever watches it: search, trial, phase and step events.

The daemon calls a :class:`Reporter`; the CLI's implementation renders a live rich table, tests
record the events, and :class:`NullReporter` ignores them. Reporters must not raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class SearchInfo:
    """The search about to run."""

    study: str
    target: str
    target_description: str
    storage: str  # password masked
    artifacts: Path
    out: Path | None  # None: --no-export
    space: str
    space_summary: str
    voice: str
    device: str
    n_trials: int  # trials the study should hold when the search ends
    n_done: int  # trials already finished (a resumed study)
    steps: int  # fine-tune steps per trial
    timeout_s: float | None
    latency_label: str  # e.g. "projected for rtx3060" or "measured on cpu: ..."
    memory_label: str
    quality_label: str


@dataclass(frozen=True)
class TrialRow:
    """One finished (or failed) trial, as the live table shows it."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    label: str  # baseline name or plan summary
    quality: float | None = None
    latency_ms: float | None = None
    memory_mb: float | None = None
    feasible: bool | None = None
    pareto: bool = False
    reason: str = ""  # why it failed; for a complete infeasible trial, the constraints it breaks
    duration_s: float = 0.0
    steps_done: int = 0


@dataclass(frozen=True)
class SearchSummary:
    """How a search ended."""

    study: str
    target: str
    status: str  # finished | interrupted | failed
    rows: tuple[TrialRow, ...]
    exported: tuple[Path, ...] = ()
    export_error: str = ""
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    interrupted_by: str = ""  # "Ctrl-C" or "SIGTERM" when the status is interrupted
    export_skipped: bool = False  # stopped by SIGTERM: the search ends without its export

    @property
    def pareto(self) -> tuple[TrialRow, ...]:
        return tuple(r for r in self.rows if r.pareto)


class Reporter(Protocol):
    """Receives the daemon's events, in this order per search:

    ``phase(-1, ...)`` lines while the voice and the teacher cache load (with the default trial
    pipeline), ``search_started``, then per trial ``trial_started``, ``phase`` (compress,
    fine-tune or distance, score, save; none for a repeated plan, whose result is reused),
    ``step`` during fine-tuning, ``trial_finished``; then ``phase(-1, "export")``, a
    ``phase(-1, "export: <what>")`` line as each trial's export starts, ``exported`` (with
    ``--no-export``, none of these) and ``search_finished``. A search-wide phase is a name
    ("loading the voice", "export") or a line "<name>: <what it is doing>". ``rows`` passed to
    ``trial_finished`` are every finished trial with Pareto flags recomputed.
    """

    def search_started(self, info: SearchInfo) -> None: ...

    def trial_started(self, number: int, label: str, eta_s: float | None) -> None: ...

    def phase(self, number: int, phase: str) -> None: ...

    def step(self, number: int, step: int, total: int, loss: float, distance: float | None) -> None: ...

    def trial_finished(self, row: TrialRow, rows: tuple[TrialRow, ...]) -> None: ...

    def exported(self, paths: tuple[Path, ...], error: str) -> None: ...

    def search_finished(self, summary: SearchSummary) -> None: ...


class NullReporter:
    """A reporter that ignores everything."""

    def search_started(self, info: SearchInfo) -> None:
        pass

    def trial_started(self, number: int, label: str, eta_s: float | None) -> None:
        pass

    def phase(self, number: int, phase: str) -> None:
        pass

    def step(self, number: int, step: int, total: int, loss: float, distance: float | None) -> None:
        pass

    def trial_finished(self, row: TrialRow, rows: tuple[TrialRow, ...]) -> None:
        pass

    def exported(self, paths: tuple[Path, ...], error: str) -> None:
        pass

    def search_finished(self, summary: SearchSummary) -> None:
        pass


__all__ = ["NullReporter", "Reporter", "SearchInfo", "SearchSummary", "TrialRow"]
