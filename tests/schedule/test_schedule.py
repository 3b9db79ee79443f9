"""Scheduling: idempotent schedules, due runs, the database lock, re-export on change."""

from __future__ import annotations

import datetime as dt
import threading

import optuna
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from autocompress.cli.main import main
from autocompress.exceptions import ConfigError
from autocompress.schedule import (
    ExportPlan,
    FrontSignature,
    RunOutcome,
    ScheduleSpec,
    acquire_lock,
    add_schedule,
    export_if_needed,
    front_signature,
    history,
    list_schedules,
    merge_crontab,
    run_due,
    run_schedule,
)
from autocompress.schedule._tables import ScheduleRow, engine_for, utcnow

optuna.logging.set_verbosity(optuna.logging.WARNING)



def _backdate(url: str, name: str, when: dt.datetime) -> None:
    with Session(engine_for(url)) as s, s.begin():
        s.execute(update(ScheduleRow).where(ScheduleRow.name == name).values(created_at=when))


def test_schedule_added_twice_is_stored_once(url):
    spec = ScheduleSpec("nightly", "0 2 * * *", ("--target", "rtx3060", "--study", "n"), 600)
    assert add_schedule(url, spec) is True
    assert add_schedule(url, spec) is False
    assert list_schedules(url) == [spec]
    changed = ScheduleSpec("nightly", "0 3 * * *", spec.args, 600)
    assert add_schedule(url, changed) is True
    assert list_schedules(url) == [changed]


def test_bad_cron_and_name_are_refused():
    with pytest.raises(ConfigError, match="cron"):
        ScheduleSpec("x", "every night", ())
    with pytest.raises(ConfigError, match="name"):
        ScheduleSpec("two words", "0 2 * * *", ())


def test_run_due_runs_a_due_schedule_once_and_records_it(url):
    add_schedule(url, ScheduleSpec("nightly", "0 2 * * *", ("--target", "cpu"), 60))
    _backdate(url, "nightly", utcnow() - dt.timedelta(days=1, hours=1))
    calls = []

    def runner(spec):
        calls.append(spec.name)
        return RunOutcome(exit_code=0, trials_added=3, front_changed=True, exports=("a",))

    first = run_due(url, runner=runner)
    second = run_due(url, runner=runner)  # already ran: next fire is in the future
    assert calls == ["nightly"]
    assert [r.status for r in first] == ["ok"] and second == []
    (rec,) = history(url, "nightly")
    assert rec.trials_added == 3 and rec.front_changed is True and rec.exports == ["a"]
    assert rec.ended_at is not None and rec.ended_at >= rec.started_at


def test_a_schedule_that_is_not_due_does_not_run(url):
    add_schedule(url, ScheduleSpec("later", "0 2 * * *", ("--target", "cpu"), 60))
    assert run_due(url, runner=lambda s: RunOutcome(0)) == []


def test_a_failing_run_is_recorded_and_releases_its_lock(url):
    spec = ScheduleSpec("boom", "* * * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)

    def runner(_spec):
        raise RuntimeError("disk full")

    rec = run_schedule(url, spec, runner=runner)
    assert rec is not None and rec.status == "failed" and "disk full" in rec.error
    assert acquire_lock(url, "boom", "someone-else", 10)  # the lock was released


def test_concurrent_runs_of_one_schedule_do_not_overlap(url):
    spec = ScheduleSpec("busy", "* * * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow(_spec):
        calls.append(1)
        started.set()
        release.wait(10)
        return RunOutcome(0)

    t = threading.Thread(target=run_schedule, args=(url, spec, slow))
    t.start()
    assert started.wait(10)
    skipped = run_schedule(url, spec, runner=slow)  # lock held by the first run
    release.set()
    t.join(10)
    assert calls == [1]
    assert skipped.status == "skipped" and "holds the lock" in skipped.error
    assert sorted(r.status for r in history(url, "busy")) == ["ok", "skipped"]


def test_an_expired_lock_is_taken_over(url):
    t0 = utcnow()
    assert acquire_lock(url, "s", "crashed-host", ttl_s=10, now=t0)
    assert not acquire_lock(url, "s", "me", ttl_s=10, now=t0 + dt.timedelta(seconds=5))
    assert acquire_lock(url, "s", "me", ttl_s=10, now=t0 + dt.timedelta(seconds=11))
    assert not acquire_lock(url, "s", "third", ttl_s=10, now=t0 + dt.timedelta(seconds=12))


def _study(url: str, name: str) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"], load_if_exists=True)


def _add(study: optuna.Study, quality: float, latency: float, feasible: bool = True) -> None:
    t = study.ask()
    t.set_constraint("budget", -1.0 if feasible else 1.0)
    study.tell(t, [quality, latency])


def test_reexport_only_when_the_feasible_front_changes(url, tmp_path):
    study = _study(url, "s1")
    _add(study, 0.8, 10.0)
    plan = ExportPlan(storage=url, study="s1", target="rtx3060", out_root=tmp_path / "out")
    exported = []

    def exporter(plan, out):
        out.mkdir(parents=True)
        (out / "bundle").mkdir()
        exported.append(out)
        return [out / "bundle"]

    first = export_if_needed(plan, front_signature(url, "s1"), exporter=exporter, now=dt.datetime(2026, 1, 1))
    assert len(exported) == 1 and first == [exported[0] / "bundle"]
    _add(study, 0.5, 20.0)  # dominated: the front is unchanged
    _add(study, 0.99, 1.0, feasible=False)  # infeasible: does not count
    after = front_signature(url, "s1")
    assert after.n_complete == 3
    assert export_if_needed(plan, after, exporter=exporter) == []
    assert len(exported) == 1

    _add(study, 0.9, 5.0)  # dominates the first trial
    newer = front_signature(url, "s1")
    assert newer.front != after.front
    paths = export_if_needed(plan, newer, exporter=exporter, now=dt.datetime(2026, 1, 2, 3, 4, 5))
    assert len(exported) == 2 and paths == [exported[1] / "bundle"]
    latest = tmp_path / "out" / "latest"
    assert latest.is_symlink() and latest.resolve() == exported[1].resolve()

    # A later change gets a new folder; the previous bundles are kept.
    _add(study, 0.95, 4.0)
    again = front_signature(url, "s1")
    export_if_needed(plan, again, exporter=exporter, now=dt.datetime(2026, 1, 3, 3, 4, 5))
    assert len(exported) == 3 and exported[0].exists() and exported[1].exists()
    assert latest.resolve() == exported[2].resolve()


def test_front_of_a_missing_study_is_empty(url):
    assert front_signature(url, "nope") == FrontSignature(0, frozenset())


def test_crontab_lines_are_idempotent():
    a = merge_crontab("MAILTO=me\n", "n", "0 2 * * * run # autocompress-schedule:n")
    b = merge_crontab(a, "n", "0 2 * * * run # autocompress-schedule:n")
    assert a == b and b.count("autocompress-schedule:n") == 1 and "MAILTO=me" in b
    assert merge_crontab(b, "n", None) == "MAILTO=me\n"


def test_cli_add_list_history(url, capsys):
    argv = ["schedule", "add", "--storage", url, "--name", "nightly", "--cron", "0 2 * * *", "--", "--target", "rtx3060"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert "unchanged" in capsys.readouterr().out
    (spec,) = list_schedules(url)
    assert spec.args == ("--target", "rtx3060", "--study", "nightly")
    assert main(["schedule", "add", "--storage", url, "--name", "x", "--cron", "nope", "--", "--target", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cron" in err[0]
    assert main(["schedule", "remove", "--storage", url, "nightly"]) == 0
    assert list_schedules(url) == []
    assert main(["schedule", "remove", "--storage", url, "nightly"]) == 2


def test_cli_add_refuses_search_arguments_every_run_would_reject(url, tmp_path, capsys):
    base = ["schedule", "add", "--storage", url, "--name", "n1", "--cron", "0 2 * * *", "--"]
    cases = [
        (["--target", "nosuch"], "unknown target 'nosuch'"),
        (["--target", "rtx3060", "--trials", "-5"], "--trials: must be at least 1"),
        (["--target", "rtx3060", "--gpt", str(tmp_path / "none.ckpt")], "--sovits"),
        (["--target", "rtx3060", "--bogus"], "unrecognized arguments: --bogus"),
    ]
    for args, expected in cases:
        assert main([*base, *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert list_schedules(url) == []


def test_the_crontab_line_wakes_every_minute_and_leaves_the_utc_time_to_run_due(tmp_path):
    """cron reads its fields in local time; the schedule's expression is UTC, so cron must not apply it."""
    from autocompress.schedule._backends import crontab_line
    from autocompress.schedule._core import ScheduleSpec

    line = crontab_line(ScheduleSpec("n", "0 2 * * *", ("--target", "cpu"), 3600.0), "sqlite:///x.db", tmp_path)
    assert line.startswith("* * * * * ") and "schedule run-due" in line and "--name n" in line
    assert line.endswith("# autocompress-schedule:n")


def test_each_scheduled_run_adds_its_trials_to_the_study():
    """--trials in a schedule is per run: a study that holds 20 asks for 25 with --trials 5."""
    from autocompress.schedule import search_command
    from autocompress.schedule._core import UNBOUNDED_TRIALS, ScheduleSpec

    spec = ScheduleSpec("n", "0 2 * * *", ("--target", "cpu", "--trials", "5", "--study", "n"), 600.0)
    cmd = search_command(spec, finished=20)
    assert cmd[cmd.index("--trials") + 1] == "25" and cmd.count("--trials") == 1
    assert "--no-export" in cmd and cmd[cmd.index("--timeout") + 1] == "600"
    spec = ScheduleSpec("n", "0 2 * * *", ("--target", "cpu", "--trials=3"), 600.0)
    cmd = search_command(spec, finished=4)
    assert cmd[cmd.index("--trials") + 1] == "7" and not [a for a in cmd if a.startswith("--trials=")]
    unbounded = search_command(ScheduleSpec("n", "0 2 * * *", ("--target", "cpu"), 600.0), finished=2)
    assert unbounded[unbounded.index("--trials") + 1] == str(2 + UNBOUNDED_TRIALS)  # the time budget ends it
