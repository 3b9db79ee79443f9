"""Schedules: add, list, remove, decide what is due, run it under a database lock.

A schedule is a cron expression plus the ``run_search`` arguments it runs, in the working
directory it was added from. Each run gets a time budget, resumes its study, and is recorded
in the history table. A lease row in the database keeps two runs of one schedule from
overlapping, across processes and machines; a crashed holder's lease expires.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from croniter import CroniterBadDateError, croniter
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from autocompress.exceptions import ConfigError
from autocompress.interrupts import exit_code, signal_name
from autocompress.schedule._front import Exporter, ExportPlan
from autocompress.schedule._tables import (
    ScheduleLockRow,
    ScheduleRow,
    ScheduleRunRow,
    engine_for,
    utcnow,
)

DEFAULT_TIMEOUT_S = 3600.0
DEFAULT_KEEP_EXPORTS = 5  # export folders (runs/<time>) a schedule keeps; older ones it wrote are deleted
LOCK_TTL_S = 300.0  # a lease lasts this long unless its holder renews it (each minute while it runs)
HANG_GRACE_S = 3600.0  # a search still running this long after its time budget is stopped

log = logging.getLogger(__name__)


def _check_cron(cron: str) -> None:
    if not croniter.is_valid(cron):
        raise ConfigError(f"not a valid cron expression: {cron!r} (expected e.g. '0 2 * * *')")
    try:
        croniter(cron, utcnow()).get_next(dt.datetime)  # from now: a year field may lie in the past
    except CroniterBadDateError:
        raise ConfigError(f"cron expression {cron!r} never fires (no such date); expected e.g. '0 2 * * *'") from None


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule runs, when, and from which working directory (None: the runner's own);
    ``keep_exports`` is how many of its export folders it keeps (0: all)."""

    name: str
    cron: str
    args: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    workdir: str | None = None
    keep_exports: int = DEFAULT_KEEP_EXPORTS

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name) or "/" in self.name:
            raise ConfigError(f"schedule name must be a non-empty word without spaces or '/', got {self.name!r}")
        _check_cron(self.cron)
        if not 0 < self.timeout_s < math.inf:  # also refuses nan
            raise ConfigError(f"timeout must be a finite number of seconds above 0, got {self.timeout_s}")
        if isinstance(self.keep_exports, bool) or not isinstance(self.keep_exports, int) or self.keep_exports < 0:
            raise ConfigError(f"exports to keep must be a whole number, 0 (all) or more, got {self.keep_exports!r}")


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
    trials_failed: int | None = None
    trials_pruned: int | None = None


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
                    timeout_s=spec.timeout_s, created_at=utcnow(), workdir=spec.workdir,
                    keep_exports=spec.keep_exports,
                )
            )
            return True
        new = (spec.cron, args_json, spec.timeout_s, spec.workdir, spec.keep_exports)
        if (row.cron, row.args_json, row.timeout_s, row.workdir, _keep_exports(row)) == new:
            return False
        if row.cron != spec.cron:  # a new time starts afresh: a fire it would have had before now is no missed run
            row.created_at = utcnow()
        row.cron, row.args_json, row.timeout_s, row.workdir, row.keep_exports = new
        return True


def stored_keep_exports(url: str, name: str) -> int | None:
    """How many export folders schedule ``name`` keeps; None when there is no such schedule."""
    with Session(engine_for(url)) as s:
        row = s.get(ScheduleRow, name)
        return None if row is None else _keep_exports(row)


def _keep_exports(row: ScheduleRow) -> int:
    return DEFAULT_KEEP_EXPORTS if row.keep_exports is None else row.keep_exports


def _load(url: str) -> tuple[list[ScheduleSpec], dict[str, str]]:
    """The stored schedules that can run, and the reason each of the others cannot."""
    good, broken = [], {}
    with Session(engine_for(url)) as s:
        for row in s.scalars(select(ScheduleRow).order_by(ScheduleRow.name)).all():
            try:
                good.append(_spec(row))
            except (ConfigError, ValueError, TypeError) as e:  # stored by an older, laxer version
                broken[row.name] = str(e)
    return good, broken


def list_schedules(url: str) -> list[ScheduleSpec]:
    """The stored schedules that can run, by name (see :func:`broken_schedules` for the others)."""
    return _load(url)[0]


def broken_schedules(url: str) -> dict[str, str]:
    """Stored schedules that cannot run (a cron that never fires, an infinite timeout), with why."""
    return next_runs(url)[1]


def schedule_exists(url: str, name: str) -> bool:
    with Session(engine_for(url)) as s:
        return s.get(ScheduleRow, name) is not None


def remove_schedule(url: str, name: str) -> None:
    with Session(engine_for(url)) as s, s.begin():
        if s.get(ScheduleRow, name) is None:
            raise ConfigError(f"no schedule named {name!r}; see 'autocompress schedule list'")
        s.execute(delete(ScheduleRow).where(ScheduleRow.name == name))


def _spec(row: ScheduleRow) -> ScheduleSpec:
    return ScheduleSpec(row.name, row.cron, tuple(json.loads(row.args_json)), row.timeout_s, row.workdir,
                        _keep_exports(row))


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
                trials_failed=r.trials_failed, trials_pruned=r.trials_pruned,
            )
            for r in s.scalars(q).all()
        ]


def next_due(url: str, name: str, now: dt.datetime | None = None) -> dt.datetime:
    """The next time ``name`` fires after its last run started (or after it was created).

    Raises:
        ConfigError: when there is no such schedule, or its cron expression never fires.
    """
    with Session(engine_for(url)) as s:
        row = s.get(ScheduleRow, name)
        if row is None:
            raise ConfigError(f"no schedule named {name!r}")
        last = s.scalars(
            select(ScheduleRunRow.started_at)
            .where(ScheduleRunRow.schedule == name)  # a skipped fire counts: its holder ran it
            .order_by(ScheduleRunRow.started_at.desc())
            .limit(1)
        ).first()
        # a schedule removed and added again starts afresh: its old runs do not make it due now
        base = max(last, row.created_at) if last else row.created_at
        try:
            return croniter(row.cron, base).get_next(dt.datetime)
        except (CroniterBadDateError, ValueError, KeyError) as e:
            raise ConfigError(f"cron expression {row.cron!r} never fires ({e})") from e


def next_runs(url: str) -> tuple[dict[str, dt.datetime], dict[str, str]]:
    """When each schedule that can run fires next, and why each of the others cannot run."""
    specs, broken = _load(url)
    times = {}
    for spec in specs:
        try:
            times[spec.name] = next_due(url, spec.name)
        except ConfigError as e:
            broken[spec.name] = str(e)
    return times, dict(sorted(broken.items()))


# Told the name and the reason of each schedule that cannot run; the others go on.
BrokenHandler = Callable[[str, str], None]


def _log_broken(name: str, reason: str) -> None:
    log.warning("schedule %s cannot run: %s", name, reason)


def due_schedules(
    url: str, now: dt.datetime | None = None, on_broken: BrokenHandler = _log_broken
) -> list[ScheduleSpec]:
    """The schedules due at ``now``; each one that cannot run is reported to ``on_broken``."""
    now = now or utcnow()
    specs, _ = _load(url)
    times, broken = next_runs(url)
    for name, reason in broken.items():
        on_broken(name, reason)
    return [spec for spec in specs if spec.name in times and times[spec.name] <= now]


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


def lock_holder(url: str, name: str) -> str | None:
    with Session(engine_for(url)) as s:
        row = s.get(ScheduleLockRow, name)
        return None if row is None else row.holder


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RunOutcome:
    """What one scheduled run did; ``exports`` are the bundle folders written, if any.

    ``trials_added`` counts the trials finished in any state; ``trials_failed`` and
    ``trials_pruned`` say how many of them failed or were pruned.
    """

    exit_code: int
    trials_added: int | None = None
    front_changed: bool | None = None
    exports: tuple[str, ...] = ()
    error: str | None = None
    trials_failed: int | None = None
    trials_pruned: int | None = None


# A runner executes one schedule's search within its time budget and reports the outcome.
Runner = Callable[[ScheduleSpec], RunOutcome]


UNBOUNDED_TRIALS = 10_000  # a scheduled run without --trials: its time budget ends it
SEARCH_PROGRAM = (sys.executable, "-m", "autocompress", "search")


def time_budget(spec: ScheduleSpec) -> float:
    """Seconds a run may start trials for: the search arguments' ``--timeout``, else the schedule's."""
    from autocompress.schedule._args import parse_search_args

    return parse_search_args(spec.args).timeout or spec.timeout_s


def search_command(
    spec: ScheduleSpec, finished: int = 0, program: Sequence[str] = SEARCH_PROGRAM
) -> list[str]:
    """The command a scheduled run executes: ``run_search`` resuming its study, no export.

    A schedule's ``--trials N`` is what each run adds: the study, which already holds
    ``finished`` trials, is asked to hold ``finished + N`` (without ``--trials``, as many as the
    time budget allows). The search stops starting trials after :func:`time_budget`. The
    scheduler exports afterwards, as the search arguments say.
    """
    from autocompress.schedule._args import parse_search_args, search_argv

    ns = parse_search_args(spec.args)
    per_run = ns.trials or UNBOUNDED_TRIALS
    return [*program, *search_argv(ns, trials=finished + per_run, timeout=time_budget(spec), export=False)]


def finished_trials(storage: str, study_name: str | None) -> int:
    """Trials of the study that count towards ``--trials`` (0 when it does not exist yet)."""
    import optuna

    from autocompress.schedule._front import database_exists
    from autocompress.search.study import count_done

    if study_name is None or not database_exists(storage):
        return 0
    try:
        return count_done(optuna.load_study(study_name=study_name, storage=storage))
    except KeyError:
        return 0


@dataclass(frozen=True)
class ChildResult:
    """How a search child ended: its exit code, its last stderr line, whether it was stopped."""

    code: int
    last_error: str | None
    stopped: bool


def run_child(command: Sequence[str], cwd: str | Path, limit_s: float) -> ChildResult:
    """Run ``command`` in ``cwd``, passing its stderr through and keeping the last line.

    A child still running after ``limit_s`` seconds, or when this process is interrupted, is
    sent SIGTERM, then SIGKILL 30 s later; an interruption is raised again afterwards.
    """
    proc = subprocess.Popen(list(command), cwd=cwd, stderr=subprocess.PIPE, text=True, errors="replace")
    last: list[str] = []

    def _relay() -> None:
        assert proc.stderr is not None  # opened as a pipe above
        for line in proc.stderr:
            sys.stderr.write(line)
            if line.strip():
                last[:] = [line.strip()]

    reader = threading.Thread(target=_relay, daemon=True)
    reader.start()
    stopped = False
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        stopped = True
        code = _stop(proc)
    except BaseException:
        _stop(proc)
        raise
    finally:
        reader.join(timeout=5)
        if proc.stderr is not None and not reader.is_alive():  # a grandchild may hold the pipe open
            proc.stderr.close()
    return ChildResult(code, last[0] if last else None, stopped)


def _stop(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@dataclass
class SubprocessRunner:
    """Runs a schedule's search in a child process and exports the front it leaves.

    The child runs in the schedule's working directory with the schedule's arguments (its
    relative paths mean what they meant at ``schedule add``); the export honours its
    ``--no-export``, ``--export-format``, ``--out`` and ``--artifacts``, and keeps the
    schedule's newest ``keep_exports`` export folders.
    """

    program: Sequence[str] = SEARCH_PROGRAM
    hang_grace_s: float = HANG_GRACE_S
    exporter: Exporter | None = None  # None: autocompress.search.export_pareto

    def __call__(self, spec: ScheduleSpec) -> RunOutcome:
        from autocompress.schedule._args import parse_search_args, storage_in_dir
        from autocompress.schedule._front import export_if_needed, front_signature

        ns = parse_search_args(spec.args)
        workdir = Path(spec.workdir) if spec.workdir else Path.cwd()
        storage = storage_in_dir(workdir, ns.storage)
        before = front_signature(storage, ns.study)
        budget = time_budget(spec)
        command = search_command(spec, finished_trials(storage, ns.study), self.program)
        child = run_child(command, workdir, budget + self.hang_grace_s)
        code, error = child.code, None
        if child.stopped:
            code = 124
            error = (f"search still running {self.hang_grace_s:.0f} s after its {budget:.0f} s budget "
                     "(a hung trial?) and was stopped")
        elif code != 0:
            error = f"search exited with code {code}" + (f": {child.last_error}" if child.last_error else "")
        after = front_signature(storage, ns.study)
        exports: list[Path] = []
        plan = self.export_plan(ns, workdir, storage)
        if plan is not None:
            plan = dataclasses.replace(plan, schedule=spec.name, keep=spec.keep_exports)
            try:
                exports = export_if_needed(plan, after, **({"exporter": self.exporter} if self.exporter else {}))
            except Exception as e:  # noqa: BLE001 - recorded with the trial counts; the next run retries
                code = code or 1
                error = "; ".join(filter(None, [error, f"export failed: {e}"]))
        return RunOutcome(
            exit_code=code,
            trials_added=after.n_finished - before.n_finished,
            front_changed=after.front != before.front,
            exports=tuple(str(p) for p in exports),
            error=error,
            trials_failed=after.n_failed - before.n_failed,
            trials_pruned=after.n_pruned - before.n_pruned,
        )

    @staticmethod
    def export_plan(ns: argparse.Namespace, workdir: Path, storage: str) -> ExportPlan | None:
        """The export the search arguments ask for, with paths seen from ``workdir``; None for none."""
        from autocompress.schedule._args import in_dir
        from autocompress.search.paths import artifacts_dir

        if not ns.export or ns.study is None:
            return None
        is_file = ns.target.endswith(".toml")
        target_name = Path(ns.target).stem if is_file else ns.target
        return ExportPlan(
            storage=storage,
            study=ns.study,
            target=str(in_dir(workdir, ns.target)) if is_file else ns.target,
            out_root=in_dir(workdir, ns.out or Path("exports") / ns.study / target_name),
            artifacts=in_dir(workdir, artifacts_dir(storage, ns.artifacts)),
            export_format=ns.export_format,
        )


subprocess_runner = SubprocessRunner()


def _record_skip(url: str, name: str) -> RunRecord:
    holder = lock_holder(url, name)
    now = utcnow()
    with Session(engine_for(url)) as s, s.begin():
        s.add(
            ScheduleRunRow(
                schedule=name, started_at=now, ended_at=now, status="skipped",
                error=f"another run holds the lock ({holder or 'released since'})",
            )
        )
    return history(url, name, limit=1)[0]


ABANDONED = "its process ended without recording the run's end (killed, or the machine went down)"


def _close_abandoned(url: str, name: str) -> None:
    """Mark the runs of ``name`` still ``running`` as interrupted; called by the lock's holder,
    which no live run can be beside."""
    with Session(engine_for(url)) as s, s.begin():
        s.execute(
            update(ScheduleRunRow)
            .where(ScheduleRunRow.schedule == name, ScheduleRunRow.status == "running")
            .values(status="interrupted", error=ABANDONED)
        )


def _record_end(url: str, run_id: int, status: str, outcome: RunOutcome) -> None:
    with Session(engine_for(url)) as s, s.begin():
        row = s.get(ScheduleRunRow, run_id)
        assert row is not None  # inserted by run_schedule
        row.ended_at = utcnow()
        row.status = status
        row.exit_code = outcome.exit_code
        row.trials_added = outcome.trials_added
        row.trials_failed = outcome.trials_failed
        row.trials_pruned = outcome.trials_pruned
        row.front_changed = None if outcome.front_changed is None else int(outcome.front_changed)
        row.exports = json.dumps(list(outcome.exports))
        row.error = outcome.error


def run_schedule(
    url: str, spec: ScheduleSpec, runner: Runner = subprocess_runner, holder: str | None = None
) -> RunRecord:
    """Run ``spec`` once if its lock can be taken; return its history record (``skipped`` if busy).

    An interruption (Ctrl-C, or SIGTERM inside :func:`sigterm_interrupts`) is recorded as
    ``interrupted``, the lock released, and raised again.
    """
    holder = holder or new_holder_id()
    if not acquire_lock(url, spec.name, holder, LOCK_TTL_S):
        return _record_skip(url, spec.name)
    _close_abandoned(url, spec.name)
    with Session(engine_for(url)) as s, s.begin():
        row = ScheduleRunRow(schedule=spec.name, started_at=utcnow(), status="running")
        s.add(row)
        s.flush()
        run_id = row.id
    stop = threading.Event()

    def _heartbeat() -> None:  # keep the lease alive while a long run is going
        while not stop.wait(LOCK_TTL_S / 5):
            try:
                renew_lock(url, spec.name, holder, LOCK_TTL_S)
            except SQLAlchemyError as e:  # a database blip must not end the renewals: the next one may pass
                log.warning("schedule %s: cannot renew its lock (%s); trying again", spec.name, type(e).__name__)

    beat = threading.Thread(target=_heartbeat, daemon=True)
    beat.start()
    status, outcome = "interrupted", RunOutcome(exit_code=130, error="interrupted (Ctrl-C or SIGTERM); the search was stopped")
    try:
        outcome = runner(spec)
        status = "ok" if outcome.exit_code == 0 else "failed"
    except KeyboardInterrupt as e:  # recorded with the status the process exits with (143 for SIGTERM)
        outcome = RunOutcome(exit_code=exit_code(e), error=f"interrupted by {signal_name(e)}; the search was stopped")
        raise
    except Exception as e:  # noqa: BLE001 - recorded, never lost: the daemon keeps going
        status, outcome = "failed", RunOutcome(exit_code=1, error=f"{type(e).__name__}: {e}")
    finally:  # also on KeyboardInterrupt and SystemExit, which then propagate
        stop.set()
        beat.join(timeout=5)
        try:
            _record_end(url, run_id, status, outcome)
        finally:
            release_lock(url, spec.name, holder)
    return history(url, spec.name, limit=1)[0]


def run_due(
    url: str,
    now: dt.datetime | None = None,
    runner: Runner = subprocess_runner,
    only: str | None = None,
    on_broken: BrokenHandler = _log_broken,
) -> list[RunRecord]:
    """Run every schedule that is due now, each once; a schedule locked elsewhere is recorded
    as skipped, and one that cannot run is reported to ``on_broken`` while the others go on.

    Raises:
        ConfigError: when ``only`` names no schedule.
    """
    if only is not None and not schedule_exists(url, only):
        raise ConfigError(f"no schedule named {only!r}; see 'autocompress schedule list'")
    done = []

    def _report(name: str, reason: str) -> None:
        if only is None or name == only:
            on_broken(name, reason)

    for spec in due_schedules(url, now, on_broken=_report):
        if only is not None and spec.name != only:
            continue
        done.append(run_schedule(url, spec, runner))
    return done
