"""The queries the search daemon, the exporter and the CLI run against our tables.

A :class:`Store` opens a database URL (SQLite or any SQLAlchemy URL), migrates the ``ac_``
tables forward and offers one method per fact the system records: a run started or ended, a
trial started or finished with its labelled metrics, a bundle exported. Every method is its own
transaction; objects returned are detached snapshots.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from autocompress.exceptions import StoreError
from autocompress.store.engine import create_store_engine, database_reason, display_url, exclusive
from autocompress.store.hashing import hash_folder
from autocompress.store.migrations import migrate
from autocompress.store.models import (
    METRIC_KINDS,
    TRIAL_STATES,
    BundleRecord,
    MetricRecord,
    SearchRun,
    TrialRecord,
    utcnow,
)


class MetricLike(Protocol):
    """Anything shaped like ``autocompress.score.Metric``; a ``note`` attribute is optional."""

    name: str
    value: float
    unit: str
    kind: str
    device: str


@dataclass(frozen=True)
class Objectives:
    """The three objective values of a finished trial, in the study's order."""

    quality: float  # composite quality score, higher is better
    latency_ms: float  # on the target, lower is better
    memory_mb: float  # on the target, lower is better

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.quality, self.latency_ms, self.memory_mb)


PROCESS_SPACE_KEY = "process_space"  # in a run's device_info: see process_space()


def process_space() -> str:
    """Which process ids this process can see: the kernel's boot and its pid namespace.

    Containers that share a host name (``docker run --network host``) have pid namespaces of
    their own, where another container's pid means nothing. "" where /proc cannot tell.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}/{namespace}"


def _death_test(silent_after_s: float | None, now: datetime) -> Callable[[SearchRun], bool]:
    """Whether a ``running`` run is dead: one whose process this process can see (same host and,
    where both recorded it, the same :func:`process_space`) by that process (never this
    process's own), any other by a heartbeat older than ``silent_after_s`` seconds before ``now``
    (the database's clock, which wrote the heartbeats) when given."""
    host, space = socket.gethostname(), process_space()
    limit = as_utc(now) - timedelta(seconds=silent_after_s) if silent_after_s is not None else None

    def visible(r: SearchRun) -> bool:
        theirs = (r.device_info or {}).get(PROCESS_SPACE_KEY) if isinstance(r.device_info, dict) else None
        return r.hostname == host and (not theirs or not space or theirs == space)

    def is_dead(r: SearchRun) -> bool:
        if visible(r) and r.pid == os.getpid():
            return False
        if visible(r) and not pid_alive(r.pid):
            return True
        return limit is not None and r.heartbeat_at is not None and as_utc(r.heartbeat_at) < limit

    return is_dead


def _database_now(s: Session) -> datetime:
    """The database server's time, in UTC: run heartbeats are written and judged by this one clock,
    so that workers whose own clocks disagree never take each other for dead."""
    return as_utc(s.execute(sa.select(sa.func.current_timestamp())).scalar_one())


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite gives back the naive UTC time it was given)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def pid_alive(pid: int) -> bool:
    """Return True when a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """Our tables in one database: open, migrate, record, query."""

    def __init__(self, url: str) -> None:
        """Open ``url`` and bring its ``ac_`` tables to the current schema.

        Raises:
            StoreError: when the database cannot be opened or migrated.
        """
        self.url = url
        self.engine = create_store_engine(url)
        with exclusive(self.engine, "autocompress:migrate"):  # workers starting together migrate once
            self.schema_version = migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self._sessions()

    def _commit(self, session: Session) -> None:
        try:
            session.commit()
        except sa.exc.SQLAlchemyError as e:
            session.rollback()
            raise StoreError(f"cannot write to {display_url(self.url)}: {database_reason(e)}") from e

    # ------------------------------------------------------------------ runs
    def start_run(
        self,
        *,
        study_name: str,
        target: str,
        space_name: str,
        space_sha256: str,
        voice: str,
        settings: dict[str, Any],
        device_info: dict[str, Any],
    ) -> int:
        """Record a search run that starts now in this process; return its id."""
        with self._session() as s:
            run = SearchRun(
                study_name=study_name, target=target, space_name=space_name, space_sha256=space_sha256,
                voice=voice, settings=settings, device_info={**device_info, PROCESS_SPACE_KEY: process_space()},
                hostname=socket.gethostname(),
                pid=os.getpid(), status="running", started_at=utcnow(), heartbeat_at=_database_now(s),
            )
            s.add(run)
            self._commit(s)
            return run.id

    def finish_run(self, run_id: int, status: str) -> None:
        """Mark a run ``finished``, ``interrupted`` or ``failed``."""
        with self._session() as s:
            run = s.get(SearchRun, run_id)
            if run is None:
                raise StoreError(f"no search run with id {run_id}")
            run.status = status
            run.finished_at = utcnow()
            self._commit(s)

    def beat_run(self, run_id: int) -> None:
        """Record that the run is alive now; a run marked ``killed`` meanwhile (its beats stopped for a
        while: a suspended machine, a lost connection) is ``running`` again."""
        with self._session() as s:
            now = _database_now(s)
            s.execute(sa.update(SearchRun).where(SearchRun.id == run_id).values(heartbeat_at=now))
            s.execute(
                sa.update(SearchRun).where(SearchRun.id == run_id, SearchRun.status == "killed")
                .values(status="running", finished_at=None)
            )
            self._commit(s)

    def reap_dead_runs(self, study_name: str, silent_after_s: float | None = None) -> list[int]:
        """Mark runs of this study whose process died as ``killed``.

        A run is dead when it ran on this machine and its process is gone, or (any machine)
        when its last heartbeat is more than ``silent_after_s`` seconds old. A run recorded
        without heartbeats (before schema 2) on another machine is never judged.

        Returns:
            The ids of the runs marked; their RUNNING trials are stale.
        """
        with self._session() as s:
            is_dead = _death_test(silent_after_s, _database_now(s))
            runs = s.scalars(
                sa.select(SearchRun).where(SearchRun.study_name == study_name, SearchRun.status == "running")
            ).all()
            dead = [r for r in runs if is_dead(r)]
            for r in dead:
                r.status = "killed"
                r.finished_at = utcnow()
            self._commit(s)
            return [r.id for r in dead]

    def live_runs(self, study_name: str, silent_after_s: float | None = None) -> list[SearchRun]:
        """The runs of this study still recorded ``running`` that :meth:`reap_dead_runs` would not
        judge dead (a run elsewhere recorded before heartbeats counts as live)."""
        with self._session() as s:
            is_dead = _death_test(silent_after_s, _database_now(s))
        return [r for r in self.runs(study_name) if r.status == "running" and not is_dead(r)]

    def runs(self, study_name: str) -> list[SearchRun]:
        with self._session() as s:
            return list(
                s.scalars(sa.select(SearchRun).where(SearchRun.study_name == study_name).order_by(SearchRun.id))
            )

    # ------------------------------------------------------------------ trials
    def begin_trial(
        self,
        *,
        run_id: int,
        study_name: str,
        trial_number: int,
        optuna_trial_id: int,
        device_info: dict[str, Any],
        baseline: str | None = None,
        plan: dict[str, Any] | None = None,
        plan_summary: str | None = None,
    ) -> None:
        """Record that a trial started (or restarted) in ``run_id``; a row of that number from an
        earlier attempt loses its results (objectives, metrics, curve, failure reason)."""
        with self._session() as s:
            row = self._trial_row(s, study_name, trial_number)
            if row is None:
                row = TrialRecord(study_name=study_name, trial_number=trial_number)
                s.add(row)
            row.run_id = run_id
            row.optuna_trial_id = optuna_trial_id
            row.state = "RUNNING"
            row.baseline = baseline
            row.plan = plan
            row.plan_summary = plan_summary
            row.device_info = device_info
            row.finetune_steps = 0
            row.started_at = utcnow()
            row.finished_at = None
            row.quality = row.latency_ms = row.memory_mb = None
            row.feasible = None
            row.failure_reason = None
            row.finetune_curve = None
            row.metrics.clear()
            self._commit(s)

    def finish_trial(
        self,
        *,
        study_name: str,
        trial_number: int,
        state: str,
        objectives: Objectives | None = None,
        feasible: bool | None = None,
        metrics: Iterable[MetricLike] = (),
        failure_reason: str | None = None,
        plan: dict[str, Any] | None = None,
        plan_summary: str | None = None,
        finetune_steps: int | None = None,
        finetune_curve: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Record how a trial ended: its state, objectives, labelled metrics or failure reason.

        Raises:
            StoreError: for an unknown trial, state or metric kind, or a non-finite metric.
        """
        if state not in TRIAL_STATES:
            raise StoreError(f"trial state must be one of {TRIAL_STATES}, got {state!r}")
        metric_rows = [_metric_row(m) for m in metrics]
        with self._session() as s:
            # Locked (PostgreSQL) and its metrics replaced by what the database holds now, not by
            # what was read: two workers recording one trial's end at once (both mirroring a
            # killed worker's trial from Optuna) wrote its metric names twice and one failed.
            row = self._trial_row(s, study_name, trial_number, load_metrics=False, lock=True)
            if row is None:
                raise StoreError(f"trial {trial_number} of study {study_name!r} was never started in the store")
            s.execute(sa.delete(MetricRecord).where(MetricRecord.trial_id == row.id))
            row.state = state
            row.finished_at = utcnow()
            row.failure_reason = failure_reason
            row.feasible = feasible
            if objectives is not None:
                row.quality, row.latency_ms, row.memory_mb = objectives.as_tuple()
            if plan is not None:
                row.plan = plan
            if plan_summary is not None:
                row.plan_summary = plan_summary
            if finetune_steps is not None:
                row.finetune_steps = finetune_steps
            if finetune_curve is not None:
                row.finetune_curve = [list(map(float, p)) for p in finetune_curve]
            for m in metric_rows:
                m.trial_id = row.id
            s.add_all(metric_rows)
            self._commit(s)

    def forget_trials(self, study_name: str) -> int:
        """Delete the trial rows (with their metrics) and bundle records of ``study_name``: for a
        study created anew under the name of a deleted one, whose trial numbers start at 0 again.
        Its runs stay, as history. Returns the number of trial rows deleted."""
        with self._session() as s:
            rows = list(s.scalars(sa.select(TrialRecord).where(TrialRecord.study_name == study_name)))
            for row in rows:
                s.delete(row)
            s.execute(sa.delete(BundleRecord).where(BundleRecord.study_name == study_name))
            self._commit(s)
            return len(rows)

    def trials(self, study_name: str, states: Sequence[str] | None = None) -> list[TrialRecord]:
        """Return a study's trials (with metrics), by trial number."""
        with self._session() as s:
            q = (
                sa.select(TrialRecord)
                .where(TrialRecord.study_name == study_name)
                .options(selectinload(TrialRecord.metrics))
                .order_by(TrialRecord.trial_number)
            )
            if states is not None:
                q = q.where(TrialRecord.state.in_(list(states)))
            return list(s.scalars(q))

    def trial(self, study_name: str, trial_number: int) -> TrialRecord | None:
        with self._session() as s:
            row = self._trial_row(s, study_name, trial_number, load_metrics=True)
            return row

    @staticmethod
    def _trial_row(
        s: Session, study_name: str, trial_number: int, load_metrics: bool = True, lock: bool = False
    ) -> TrialRecord | None:
        q = sa.select(TrialRecord).where(
            TrialRecord.study_name == study_name, TrialRecord.trial_number == trial_number
        )
        if load_metrics:
            q = q.options(selectinload(TrialRecord.metrics))
        if lock:  # until the session commits (PostgreSQL; a SQLite writer holds the whole file)
            q = q.with_for_update()
        return s.scalars(q).one_or_none()

    # ------------------------------------------------------------------ bundles
    def record_bundle(
        self,
        *,
        study_name: str,
        trial_number: int,
        target: str,
        kind: str,
        path: Path,
        run_id: int | None = None,
    ) -> BundleRecord:
        """Hash an exported folder and record it; return the row."""
        if not path.is_dir():
            raise StoreError(f"bundle folder {path} does not exist")
        sha, size = hash_folder(path)
        with self._session() as s:
            row = BundleRecord(
                run_id=run_id, study_name=study_name, trial_number=trial_number, target=target, kind=kind,
                path=str(path.resolve()), sha256=sha, size_bytes=size, created_at=utcnow(),
            )
            s.add(row)
            self._commit(s)
            return row

    def bundles(self, study_name: str, target: str | None = None) -> list[BundleRecord]:
        with self._session() as s:
            q = sa.select(BundleRecord).where(BundleRecord.study_name == study_name).order_by(BundleRecord.id)
            if target is not None:
                q = q.where(BundleRecord.target == target)
            return list(s.scalars(q))


def _metric_row(m: MetricLike) -> MetricRecord:
    kind = str(m.kind)
    if kind not in METRIC_KINDS:
        raise StoreError(f"metric {m.name!r} must be labelled one of {METRIC_KINDS}, got {kind!r}")
    value = float(m.value)
    if not math.isfinite(value):
        raise StoreError(f"metric {m.name!r} is not finite ({value}); record the trial as FAIL instead")
    note = getattr(m, "note", None)
    return MetricRecord(
        name=str(m.name), value=value, unit=str(m.unit), kind=kind, device=str(m.device),
        note=str(note) if note else None,
    )


__all__ = ["MetricLike", "Objectives", "Store", "as_utc", "pid_alive"]
