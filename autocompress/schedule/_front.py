"""The feasible Pareto front of a study, and re-export only when it changes.

Bundles of earlier fronts are kept; ``<out>/latest`` points at the current ones and is
switched atomically (a symlink replaced with ``os.replace``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from autocompress.exceptions import SearchError

DEFAULT_STORAGE = "sqlite:///db/autocompress.db"


@dataclass(frozen=True)
class FrontSignature:
    """How many trials a study has completed, and which of them form the feasible front."""

    n_complete: int
    front: frozenset[int]  # trial numbers


def _flag(args: Sequence[str], name: str) -> str | None:
    args = list(args)
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def study_of(args: Sequence[str]) -> tuple[str, str | None]:
    """(storage URL, study name) that ``run_search`` would use with ``args``."""
    return _flag(args, "--storage") or DEFAULT_STORAGE, _flag(args, "--study")


def front_signature(storage: str, study_name: str | None) -> FrontSignature:
    from autocompress.search.pareto import feasible_front  # imported here: the CLI stays torch-free

    if study_name is None:
        return FrontSignature(0, frozenset())
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # the study does not exist yet
        return FrontSignature(0, frozenset())
    trials = study.get_trials(deepcopy=False)
    n = sum(t.state == TrialState.COMPLETE for t in trials)
    return FrontSignature(n, frozenset(t.number for t in feasible_front(trials, direction_names(study))))


def direction_names(study: optuna.Study) -> list[str]:
    return ["maximize" if d == StudyDirection.MAXIMIZE else "minimize" for d in study.directions]


# Writes the bundles of a study's feasible front into a folder; returns the bundle paths.
Exporter = Callable[[str, str, str, Path], list[Path]]


def _default_exporter(storage: str, study: str, target: str, out: Path) -> list[Path]:
    try:
        from autocompress.search import export_pareto
    except ImportError as e:  # pragma: no cover - the search package always provides it
        raise SearchError("the search package provides no export_pareto()") from e
    return list(export_pareto(storage=storage, study_name=study, target=target, out_dir=out))


def switch_latest(out_root: Path, new_dir: Path) -> Path:
    """Point ``out_root/latest`` at ``new_dir`` atomically; earlier bundle folders stay."""
    link = out_root / "latest"
    tmp = out_root / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(new_dir, out_root), tmp)
    os.replace(tmp, link)
    return link


def export_if_changed(
    args: Sequence[str],
    before: FrontSignature,
    after: FrontSignature,
    exporter: Exporter = _default_exporter,
    now: dt.datetime | None = None,
) -> list[Path]:
    """Export the front into a new dated folder if it changed; return the bundle paths."""
    if after.front == before.front or not after.front:
        return []
    storage, study = study_of(args)
    target = _flag(args, "--target")
    if study is None or target is None:
        raise SearchError("a scheduled search needs --study and --target to re-export")
    out_root = Path(_flag(args, "--out") or Path("exports") / study / target)
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    dest = out_root / "runs" / stamp
    dest.parent.mkdir(parents=True, exist_ok=True)
    paths = exporter(storage, study, target, dest)
    switch_latest(out_root, dest)
    return paths
