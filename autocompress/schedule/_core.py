"""Schedules: add, list, remove, decide what is due, run it under a database lock.

A schedule is a cron expression plus the ``run_search`` arguments it runs. Each run gets
a time budget, resumes its study, and is recorded in the history table. A lease row in
the database keeps two runs of one schedule from overlapping, across processes and
machines; a crashed holder's lease expires.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from croniter import croniter
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from autocompress.exceptions import ConfigError
from autocompress.schedule._tables import (
    ScheduleLockRow,
    ScheduleRow,
    ScheduleRunRow,
    engine_for,
    utcnow,
)

DEFAULT_TIMEOUT_S = 3600.0
LOCK_GRACE_S = 300.0  # a lease outlives the run's time budget by this much before it expires


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule runs and when."""

    name: str
    cron: str
    args: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name) or "/" in self.name:
            raise ConfigError(f"schedule name must be a non-empty word without spaces or '/', got {self.name!r}")
        if not croniter.is_valid(self.cron):
            raise ConfigError(f"not a valid cron expression: {self.cron!r} (expected e.g. '0 2 * * *')")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout_s}")


@dataclass(frozen=True)
class RunRecord:
    """One row of a schedule's history."""

    id: int
    schedule: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    status: str
    exit_code: int | None
    trials_added: int | None
    front_changed: bool | None
    exports: list[str] = field(default_factory=list)
    error: str | None = None


# --------------------------------------------------------------------------- schedules


def add_schedule(url: str, spec: ScheduleSpec) -> bool:
    """Store ``spec``; return True if it was new or changed, False if stored identically already."""
    with Session(engine_for(url)) as s, s.begin():
        row = s.get(ScheduleRow, spec.name)
        args_json = json.dumps(list(spec.args))
        if row is None:
            s.add(
                ScheduleRow(
                    name=spec.name, cron=spec.cron, args_json=args_json,
                    timeout_s=spec.timeout_s, created_at=utcnow(),
                )
            )
            return True
        if (row.cron, row.args_json, row.timeout_s) == (spec.cron, args_json, spec.timeout_s):
            return False
        row.cron, row.args_json, row.timeout_s = spec.cron, args_json, spec.timeout_s
        return True


def list_schedules(url: str) -> list[ScheduleSpec]:
    with Session(engine_for(url)) as s:
        rows = s.scalars(select(ScheduleRow).order_by(ScheduleRow.name)).all()
        return [_spec(r) for r in rows]


def remove_schedule(url: str, name: str) -> None:
    with Session(engine_for(url)) as s, s.begin():
        if s.get(ScheduleRow, name) is None:
            raise ConfigError(f"no schedule named {name!r}; see 'autocompress schedule list'")
        s.execute(delete(ScheduleRow).where(ScheduleRow.name == name))


def _spec(row: ScheduleRow) -> ScheduleSpec:
    return ScheduleSpec(row.name, row.cron, tuple(json.loads(row.args_json)), row.timeout_s)


def history(url: str, name: str | None = None, limit: int = 50) -> list[RunRecord]:
    """Most recent runs first."""
    with Session(engine_for(url)) as s:
        q = select(ScheduleRunRow).order_by(ScheduleRunRow.id.desc()).limit(limit)
        if name is not None:
            q = q.where(ScheduleRunRow.schedule == name)
        return [
            RunRecord(
                id=r.id, schedule=r.schedule, started_at=r.started_at, ended_at=r.ended_at,
                status=r.status, exit_code=r.exit_code, trials_added=r.trials_added,
                front_changed=None if r.front_changed is None else bool(r.front_changed),
                exports=json.loads(r.exports) if r.exports else [], error=r.error,
            )
            for r in s.scalars(q).all()
        ]


def next_due(url: str, name: str, now: dt.datetime | None = None) -> dt.datetime:
    """The next time ``name`` fires after its last run started (or after it was created)."""
    now = now or utcnow()
    with Session(engine_for(url)) as s:
        row = s.get(ScheduleRow, name)
        if row is None:
            raise ConfigError(f"no schedule named {name!r}")
        last = s.scalars(
            select(ScheduleRunRow.started_at)
            .where(ScheduleRunRow.schedule == name, ScheduleRunRow.status != "skipped")
            .order_by(ScheduleRunRow.started_at.desc())
            .limit(1)
        ).first()
        base = last or row.created_at
        return croniter(row.cron, base).get_next(dt.datetime)


def due_schedules(url: str, now: dt.datetime | None = None) -> list[ScheduleSpec]:
    now = now or utcnow()
    return [spec for spec in list_schedules(url) if next_due(url, spec.name, now) <= now]


# --------------------------------------------------------------------------- the lock


def acquire_lock(url: str, name: str, holder: str, ttl_s: float, now: dt.datetime | None = None) -> bool:
    """Take the lease on ``name`` for ``ttl_s`` seconds; False if someone holds a live one."""
    now = now or utcnow()
    expires = now + dt.timedelta(seconds=ttl_s)
    engine = engine_for(url)
    try:
        with Session(engine) as s, s.begin():
            s.add(ScheduleLockRow(name=name, holder=holder, expires_at=expires))
        return True
    except IntegrityError:
        pass
    # A row exists: take it over only if it has expired (one atomic conditional update).
    with Session(engine) as s, s.begin():
        res = s.execute(
            update(ScheduleLockRow)
            .where(ScheduleLockRow.name == name, ScheduleLockRow.expires_at < now)
            .values(holder=holder, expires_at=expires)
        )
        return res.rowcount == 1


def renew_lock(url: str, name: str, holder: str, ttl_s: float) -> bool:
    with Session(engine_for(url)) as s, s.begin():
        res = s.execute(
            update(ScheduleLockRow)
            .where(ScheduleLockRow.name == name, ScheduleLockRow.holder == holder)
            .values(expires_at=utcnow() + dt.timedelta(seconds=ttl_s))
        )
        return res.rowcount == 1


def release_lock(url: str, name: str, holder: str) -> None:
    with Session(engine_for(url)) as s, s.begin():
        s.execute(
            delete(ScheduleLockRow).where(ScheduleLockRow.name == name, ScheduleLockRow.holder == holder)
        )


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RunOutcome:
    """What one scheduled run did; ``exports`` are the bundle folders written, if any."""

    exit_code: int
    trials_added: int | None = None
    front_changed: bool | None = None
    exports: tuple[str, ...] = ()
    error: str | None = None


# A runner executes one schedule's search within its time budget and reports the outcome.
Runner = Callable[[ScheduleSpec], RunOutcome]


UNBOUNDED_TRIALS = 10_000  # a scheduled run without --trials: its time budget ends it


def search_command(spec: ScheduleSpec, finished: int = 0) -> list[str]:
    """The command a scheduled run executes: ``run_search`` resuming its study, no export.

    A schedule's ``--trials N`` is what each run adds: the study, which already holds
    ``finished`` trials, is asked to hold ``finished + N`` (without ``--trials``, as many as the
    time budget allows). Export is decided afterwards, and only when the feasible Pareto set
    changed.
    """
    args, per_run = [], UNBOUNDED_TRIALS
    items = iter(spec.args)
    for a in items:
        if a == "--trials":
            per_run = int(next(items, str(UNBOUNDED_TRIALS)))
        elif a.startswith("--trials="):
            per_run = int(a.split("=", 1)[1])
        else:
            args.append(a)
    args += ["--trials", str(finished + per_run)]
    if "--timeout" not in args:
        args += ["--timeout", str(int(spec.timeout_s))]
    if "--no-export" not in args:
        args.append("--no-export")
    return [sys.executable, "-m", "autocompress", "search", *args]


def finished_trials(storage: str, study_name: str | None) -> int:
    """Trials of the study that count towards ``--trials`` (0 when it does not exist yet)."""
    import optuna

    from autocompress.search.study import count_done

    if study_name is None:
        return 0
    try:
        return count_done(optuna.load_study(study_name=study_name, storage=storage))
    except KeyError:
        return 0


def subprocess_runner(spec: ScheduleSpec) -> RunOutcome:
    """Run the search in a child process; the study's Pareto front is compared around it."""
    from autocompress.schedule._front import export_if_changed, front_signature, study_of

    study = study_of(spec.args)
    before = front_signature(*study)
    n_before = before.n_complete
    try:
        command = search_command(spec, finished_trials(*study))
        proc = subprocess.run(command, timeout=spec.timeout_s + LOCK_GRACE_S / 2, check=False)
        code = proc.returncode
        error = None if code == 0 else f"search exited with code {code}"
    except subprocess.TimeoutExpired:
        code, error = 124, f"search overran its {spec.timeout_s:.0f} s budget and was stopped"
    after = front_signature(*study)
    exports = export_if_changed(spec.args, before, after)
    return RunOutcome(
        exit_code=code,
        trials_added=after.n_complete - n_before,
        front_changed=after.front != before.front,
        exports=tuple(str(p) for p in exports),
        error=error,
    )


def run_schedule(
    url: str, spec: ScheduleSpec, runner: Runner = subprocess_runner, holder: str | None = None
) -> RunRecord | None:
    """Run ``spec`` once if its lock can be taken; return its history record, or None if busy."""
    holder = holder or new_holder_id()
    ttl = spec.timeout_s + LOCK_GRACE_S
    if not acquire_lock(url, spec.name, holder, ttl):
        return None
    with Session(engine_for(url)) as s, s.begin():
        row = ScheduleRunRow(schedule=spec.name, started_at=utcnow(), status="running")
        s.add(row)
        s.flush()
        run_id = row.id
    stop = threading.Event()

    def _heartbeat() -> None:  # keep the lease alive while a long run is going
        while not stop.wait(min(60.0, ttl / 3)):
            renew_lock(url, spec.name, holder, ttl)

    beat = threading.Thread(target=_heartbeat, daemon=True)
    beat.start()
    try:
        outcome = runner(spec)
    except Exception as e:  # recorded, never lost: the daemon keeps going
        outcome = RunOutcome(exit_code=1, error=f"{type(e).__name__}: {e}")
    finally:
        stop.set()
        beat.join(timeout=5)
        release_lock(url, spec.name, holder)
    with Session(engine_for(url)) as s, s.begin():
        row = s.get(ScheduleRunRow, run_id)
        assert row is not None  # inserted above in this function
        row.ended_at = utcnow()
        row.status = "ok" if outcome.exit_code == 0 else "failed"
        row.exit_code = outcome.exit_code
        row.trials_added = outcome.trials_added
        row.front_changed = None if outcome.front_changed is None else int(outcome.front_changed)
        row.exports = json.dumps(list(outcome.exports))
        row.error = outcome.error
    return history(url, spec.name, limit=1)[0]


def run_due(
    url: str, now: dt.datetime | None = None, runner: Runner = subprocess_runner, only: str | None = None
) -> list[RunRecord]:
    """Run every schedule that is due now, each once; schedules locked elsewhere are skipped."""
    done = []
    for spec in due_schedules(url, now):
        if only is not None and spec.name != only:
            continue
        record = run_schedule(url, spec, runner)
        if record is not None:
            done.append(record)
    return done
