"""The feasible Pareto front of a study, and its export whenever the current front has none.

Each export goes to ``<out>/runs/<stamp>``; ``<out>/latest`` points at the current ones and is
switched atomically (a symlink replaced with ``os.replace``). ``<out>/latest.json`` says
which front ``latest`` holds, so a front whose export failed or was removed is exported again.

A schedule marks each folder it writes with ``runs/.<folder>.schedule.json``; after each new
export it deletes its own marked folders beyond the newest ``keep`` (never ``latest``'s).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from autocompress.store.engine import DEFAULT_STORAGE, sqlite_path  # noqa: F401 - the CLI imports DEFAULT_STORAGE here

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".schedule.json"  # runs/.<folder>.schedule.json: the schedule that wrote runs/<folder>


@dataclass(frozen=True)
class FrontSignature:
    """How many trials a study has finished in each state, and which form the feasible front."""

    n_complete: int
    front: frozenset[int]  # trial numbers
    n_failed: int = 0
    n_pruned: int = 0
    # when the study's first trial started: a study deleted and made again under its name
    # numbers its trials afresh, so its front may hold the numbers of the one before
    started: str = ""

    @property
    def n_finished(self) -> int:
        """Trials finished in any state."""
        return self.n_complete + self.n_failed + self.n_pruned


def front_signature(storage: str, study_name: str | None) -> FrontSignature:
    """The study's trial counts and feasible front (empty for a study that does not exist yet)."""
    from autocompress.search.pareto import feasible_front  # imported here: the CLI stays torch-free

    if study_name is None or not database_exists(storage):
        return FrontSignature(0, frozenset())
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # the study does not exist yet
        return FrontSignature(0, frozenset())
    trials = study.get_trials(deepcopy=False)

    def count(state: TrialState) -> int:
        return sum(t.state == state for t in trials)

    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    return FrontSignature(
        count(TrialState.COMPLETE),
        frozenset(t.number for t in feasible_front(trials, direction_names(study))),
        n_failed=count(TrialState.FAIL),
        n_pruned=count(TrialState.PRUNED),
        started=min(starts).isoformat() if starts else "",
    )


def database_exists(storage: str) -> bool:
    """False for a SQLite file that does not exist yet (the first run creates it)."""
    path = sqlite_path(storage)
    return path is None or path.is_file()


def direction_names(study: optuna.Study) -> list[str]:
    return ["maximize" if d == StudyDirection.MAXIMIZE else "minimize" for d in study.directions]


@dataclass(frozen=True)
class ExportPlan:
    """Where and how a schedule exports its study's feasible front (the search's own flags).

    ``schedule`` names the schedule whose folders these are; ``keep`` is how many of its export
    folders to keep (0, or no ``schedule``: all of them).
    """

    storage: str
    study: str
    target: str
    out_root: Path
    artifacts: Path | None = None
    export_format: str = "onnx"
    schedule: str | None = None
    keep: int = 0

    def identity(self, front: frozenset[int], started: str = "") -> dict:
        """What ``latest.json`` records for ``front`` (of the study whose first trial
        started at ``started``) exported by this plan."""
        return {"study": self.study, "target": self.target, "format": self.export_format, "front": sorted(front),
                "study_started": started}


# Writes the bundles of a plan's feasible front into a folder; returns the bundle paths.
Exporter = Callable[[ExportPlan, Path], list[Path]]


def _default_exporter(plan: ExportPlan, out: Path) -> list[Path]:
    from autocompress.search import export_pareto

    return list(
        export_pareto(
            storage=plan.storage, study_name=plan.study, target=plan.target, out_dir=out,
            artifacts=plan.artifacts, export_format=plan.export_format,
        )
    )


def switch_latest(out_root: Path, new_dir: Path) -> Path:
    """Point ``out_root/latest`` at ``new_dir`` atomically; it deletes no earlier bundle folder
    (a schedule's old ones go in :func:`prune_exports`)."""
    link = out_root / "latest"
    tmp = out_root / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(new_dir, out_root), tmp)
    os.replace(tmp, link)
    return link


def front_exported(plan: ExportPlan, front: frozenset[int], started: str = "") -> bool:
    """Whether ``out_root/latest`` holds a complete export of ``front`` (of the study whose
    first trial started at ``started``) made by ``plan``."""
    link = plan.out_root / "latest"
    try:
        record = json.loads((plan.out_root / "latest.json").read_text(encoding="utf-8"))
        target = os.readlink(link)
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict) and link.is_dir() and record.get("dir") == target
        and {k: v for k, v in record.items() if k != "dir"} == plan.identity(front, started)
    )


def export_if_needed(
    plan: ExportPlan,
    after: FrontSignature,
    exporter: Exporter = _default_exporter,
    now: dt.datetime | None = None,
) -> list[Path]:
    """Export the front into a new dated folder unless ``latest`` holds it; return the bundle paths."""
    if not after.front or front_exported(plan, after.front, after.started):
        return []
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    dest = plan.out_root / "runs" / stamp
    dest.parent.mkdir(parents=True, exist_ok=True)
    paths = exporter(plan, dest)
    if plan.schedule is not None:
        _marker(dest).write_text(json.dumps({"schedule": plan.schedule, "dir": dest.name}), encoding="utf-8")
    link = switch_latest(plan.out_root, dest)
    record = {"dir": os.readlink(link), **plan.identity(after.front, after.started)}
    tmp = plan.out_root / f".latest.json.{os.getpid()}"
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, plan.out_root / "latest.json")
    prune_exports(plan, dest)
    return paths


def _marker(folder: Path) -> Path:
    return folder.parent / f".{folder.name}{MARKER_SUFFIX}"


def _latest_dirs(out_root: Path) -> set[Path]:
    """The folders ``latest`` and ``latest.json`` point at (resolved)."""
    found = set()
    try:
        found.add((out_root / "latest").resolve(strict=True))
    except (OSError, RuntimeError):
        pass
    try:
        record = json.loads((out_root / "latest.json").read_text(encoding="utf-8"))
        if isinstance(record, dict) and isinstance(record.get("dir"), str):
            found.add((out_root / record["dir"]).resolve())
    except (OSError, ValueError, RuntimeError):
        pass
    return found


def schedule_runs(plan: ExportPlan) -> list[Path]:
    """The export folders under ``out_root/runs`` that schedule ``plan.schedule`` marked as its own, oldest first."""
    runs = plan.out_root / "runs"
    if plan.schedule is None or runs.is_symlink() or not runs.is_dir():
        return []
    found = []
    for marker in runs.glob(f".*{MARKER_SUFFIX}"):
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("schedule") != plan.schedule:
            continue
        name = record.get("dir")
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or _marker(runs / name) != marker:
            continue
        folder = runs / name
        if folder.is_dir() and not folder.is_symlink():
            found.append(folder)
    return sorted(found, key=lambda f: f.name)


def prune_exports(plan: ExportPlan, newest: Path) -> list[Path]:
    """Delete the schedule's export folders beyond its newest ``plan.keep``; return those deleted.

    Only folders the schedule marked are candidates; ``newest`` and the folder ``latest`` points at
    are always kept. A folder that cannot be deleted is logged in one line and kept (the next export
    tries again); nothing here raises.
    """
    if plan.schedule is None or plan.keep <= 0:
        return []
    try:
        ours = schedule_runs(plan)
        kept = {f.resolve() for f in ours[-plan.keep:]} | {newest.resolve()} | _latest_dirs(plan.out_root)
        doomed = [f for f in ours if f.resolve() not in kept]
    except OSError as e:
        log.warning("schedule %s: cannot look for old exports to delete in %s (%s); they are kept",
                    plan.schedule, plan.out_root / "runs", e)
        return []
    deleted = []
    for folder in doomed:
        try:
            shutil.rmtree(folder)  # the marker goes last: a folder left half-deleted is tried again
            _marker(folder).unlink(missing_ok=True)
        except OSError as e:
            log.warning("schedule %s: cannot delete old export %s (%s); it is kept and tried again after the next "
                        "export", plan.schedule, folder, e)
            continue
        deleted.append(folder)
    return deleted
