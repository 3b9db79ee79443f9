"""Scheduled runs: their arguments, child process, exports, interruptions, broken schedules, backends."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path

import optuna
import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from autocompress.cli.main import main
from autocompress.exceptions import ConfigError, ExportError
from autocompress.schedule import (
    ExportPlan,
    RunOutcome,
    ScheduleSpec,
    SubprocessRunner,
    _core,
    acquire_lock,
    add_schedule,
    crontab_line,
    daemon_loop,
    export_if_needed,
    front_signature,
    history,
    list_schedules,
    run_due,
    run_schedule,
    search_command,
    sigterm_interrupts,
)
from autocompress.schedule._args import parse_search_args
from autocompress.schedule._tables import ScheduleRow, engine_for, utcnow

from _tools import exit_code, fake_crontab, tool

optuna.logging.set_verbosity(optuna.logging.WARNING)

FAKE = [sys.executable, str(Path(__file__).with_name("fake_search.py"))]




def _backdate(url: str, name: str) -> None:
    with Session(engine_for(url)) as s, s.begin():
        s.execute(update(ScheduleRow).where(ScheduleRow.name == name)
                  .values(created_at=utcnow() - dt.timedelta(days=2)))


def _bundle_exporter(calls: list):
    def exporter(plan: ExportPlan, out: Path) -> list[Path]:
        calls.append((plan, out))
        (out / "bundle").mkdir(parents=True)
        return [out / "bundle"]

    return exporter


# ---------------------------------------------------------------- 1: a failed export is retried


def test_a_front_whose_export_failed_is_exported_by_the_next_run(url, tmp_path):
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"])
    t = study.ask()
    t.set_constraint("budget", -1.0)
    study.tell(t, [0.8, 10.0])
    plan = ExportPlan(storage=url, study="s", target="rtx3060", out_root=tmp_path / "out")
    front = front_signature(url, "s")

    def broken(plan, out):
        raise ExportError("student checkpoint missing")

    with pytest.raises(ExportError):
        export_if_needed(plan, front, exporter=broken, now=dt.datetime(2026, 1, 1))
    calls: list = []
    # the front did not change since, but it has no export yet
    assert export_if_needed(plan, front, exporter=_bundle_exporter(calls), now=dt.datetime(2026, 1, 2)) != []
    assert export_if_needed(plan, front, exporter=_bundle_exporter(calls)) == []  # now it has one
    (tmp_path / "out" / "latest").unlink()  # removed by hand: exported again
    assert export_if_needed(plan, front, exporter=_bundle_exporter(calls), now=dt.datetime(2026, 1, 3)) != []
    other = ExportPlan(storage=url, study="s", target="rtx3060", out_root=tmp_path / "out", export_format="checkpoint")
    assert export_if_needed(other, front, exporter=_bundle_exporter(calls), now=dt.datetime(2026, 1, 4)) != []
    assert len(calls) == 3


# ---------------------------------------------------------------- 2: bad cron, bad timeout


def test_a_cron_that_never_fires_is_refused_at_add(url, capsys):
    with pytest.raises(ConfigError, match="never fires"):
        ScheduleSpec("x", "0 2 31 2 *", ())
    base = ["schedule", "add", "--storage", url, "--name", "x"]
    for extra, search in ((["--cron", "0 2 31 2 *"], []), (["--cron", "0 2 * * *", "--timeout", "inf"], []),
                          (["--cron", "0 2 * * *", "--timeout", "nan"], []),
                          (["--cron", "0 0 1 1 * 0 2010"], []),  # fired last in 2010
                          (["--cron", "0 2 * * *"], ["--timeout", "inf"])):  # the search's own budget
        assert exit_code([*base, *extra, "--", "--target", "rtx3060", *search]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("never fires" in err[0] or "--timeout" in err[0]), err
    assert list_schedules(url) == []


def test_one_broken_schedule_does_not_stop_the_others(url, capsys):
    add_schedule(url, ScheduleSpec("good", "0 2 * * *", ("--target", "cpu"), 60))
    _backdate(url, "good")
    with Session(engine_for(url)) as s, s.begin():  # rows an older version let through
        for name, cron, timeout in (("feb31", "0 2 31 2 *", 60.0), ("forever", "0 2 * * *", float("inf"))):
            s.execute(insert(ScheduleRow).values(name=name, cron=cron, args_json="[]", timeout_s=timeout,
                                                 created_at=utcnow() - dt.timedelta(days=2)))
    broken: list = []
    ran = run_due(url, runner=lambda spec: RunOutcome(0), on_broken=lambda n, r: broken.append(n))
    assert [r.schedule for r in ran] == ["good"] and sorted(broken) == ["feb31", "forever"]

    assert main(["schedule", "list", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "feb31" in out and "forever" in out

    logged: list[str] = []
    add_schedule(url, ScheduleSpec("good2", "0 2 * * *", ("--target", "cpu"), 60))
    _backdate(url, "good2")
    runs = daemon_loop(url, max_cycles=1, runner=lambda spec: RunOutcome(0), log=logged.append)
    assert runs == 1 and any("feb31: cannot run" in line for line in logged)

    assert main(["schedule", "run-due", "--storage", url]) == 1  # says which cannot run
    assert "feb31: cannot run" in capsys.readouterr().err


# ---------------------------------------------------------------- 3, 4, 5, 6, 12: the child search


def test_the_search_command_reads_the_schedules_arguments_as_the_search_does():
    spec = ScheduleSpec("n", "0 2 * * *", ("--target", "cpu", "--timeout=100", "--trial", "2", "--study", "n"), 3600)
    cmd = search_command(spec, finished=5)
    ns = parse_search_args(cmd[4:])
    assert ns.timeout == 100 and ns.trials == 7 and ns.export is False and ns.study == "n"
    assert not [a for a in cmd if a.startswith("--trial") and a != "--trials"]


def test_a_scheduled_run_honours_its_search_arguments_and_working_directory(tmp_path, monkeypatch):
    workdir, elsewhere = tmp_path / "voice", tmp_path / "elsewhere"
    workdir.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the daemon runs from another folder
    monkeypatch.setenv("FAKE_SEARCH_LOG", str(tmp_path / "log.jsonl"))
    monkeypatch.setenv("FAKE_SEARCH", json.dumps({"trials": ["ok", "fail", "ok", "prune"]}))
    args = ("--target", "rtx3060", "--study", "s", "--storage", "sqlite:///db/s.db", "--artifacts", "arts",
            "--export-format", "checkpoint", "--out", "out", "--timeout=100", "--trial", "2")
    spec = ScheduleSpec("s", "* * * * *", args, 3600, workdir=str(workdir))
    calls: list = []
    outcome = SubprocessRunner(program=FAKE, exporter=_bundle_exporter(calls))(spec)

    (logged,) = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged["cwd"] == str(workdir) and (workdir / "db" / "s.db").is_file()
    ns = parse_search_args(logged["argv"])
    assert ns.timeout == 100 and ns.trials == 2 and ns.export is False
    assert outcome.exit_code == 0 and outcome.error is None
    assert (outcome.trials_added, outcome.trials_failed, outcome.trials_pruned) == (4, 1, 1)
    ((plan, dest),) = calls
    assert plan.export_format == "checkpoint" and plan.artifacts == workdir / "arts"
    assert plan.out_root == workdir / "out" and dest.parent == workdir / "out" / "runs"
    assert outcome.exports == (str(dest / "bundle"),)

    no_export = ScheduleSpec("s", "* * * * *", (*args, "--no-export"), 3600, workdir=str(workdir))
    monkeypatch.setenv("FAKE_SEARCH", json.dumps({"trials": ["ok"]}))
    outcome = SubprocessRunner(program=FAKE, exporter=_bundle_exporter(calls))(no_export)
    assert outcome.trials_added == 1 and outcome.exports == () and len(calls) == 1


def test_a_failed_search_records_its_last_error_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SEARCH_LOG", str(tmp_path / "log.jsonl"))
    monkeypatch.setenv("FAKE_SEARCH", json.dumps({"error": "--gpt voice/gpt.ckpt does not exist"}))
    spec = ScheduleSpec("s", "* * * * *", ("--target", "rtx3060", "--study", "s"), 60, workdir=str(tmp_path))
    outcome = SubprocessRunner(program=FAKE, exporter=_bundle_exporter([]))(spec)
    assert outcome.exit_code == 2
    assert outcome.error == "search exited with code 2: error: --gpt voice/gpt.ckpt does not exist"


def test_a_search_is_stopped_only_long_after_its_budget(tmp_path, monkeypatch):
    limits = []

    def fake_child(command, cwd, limit_s):
        limits.append(limit_s)
        return _core.ChildResult(code=-15, last_error=None, stopped=True)

    monkeypatch.setattr(_core, "run_child", fake_child)
    spec = ScheduleSpec("s", "* * * * *", ("--target", "rtx3060", "--study", "s", "--timeout", "100",
                                           "--storage", f"sqlite:///{tmp_path / 's.db'}"), 3600)
    outcome = SubprocessRunner(exporter=_bundle_exporter([]))(spec)
    assert limits == [100 + _core.HANG_GRACE_S] and _core.HANG_GRACE_S >= 3600  # a 5000-step trial fits
    assert outcome.exit_code == 124 and "after its 100 s budget" in outcome.error


def test_a_hung_child_is_stopped(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import sys, time\nprint('still going', file=sys.stderr, flush=True)\ntime.sleep(60)\n")
    result = _core.run_child([sys.executable, str(script)], tmp_path, limit_s=0.5)
    assert result.stopped and result.code != 0 and result.last_error == "still going"


def test_add_saves_the_working_directory(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--", "--target", "cpu"]) == 0
    (spec,) = list_schedules(url)
    assert spec.workdir == str(tmp_path)


# ---------------------------------------------------------------- 7: storage


def test_the_default_storage_folder_is_created_and_a_bad_url_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no db/ here
    assert main(["schedule", "list"]) == 0
    assert (tmp_path / "db" / "autocompress.db").is_file()
    assert main(["schedule", "history", "--storage", f"sqlite:///{tmp_path / 'new' / 'x.db'}"]) == 0
    capsys.readouterr()
    assert main(["schedule", "list", "--storage", "notaurl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a database URL" in err[0]


# ---------------------------------------------------------------- 8, 9, 10: backends




def test_the_crontab_line_creates_its_log_folder(tmp_path):
    line = crontab_line(ScheduleSpec("n", "0 2 * * *", ("--target", "cpu")), "sqlite:///x.db", tmp_path)
    assert line.index(f"mkdir -p {tmp_path / 'db'}") < line.index(">>")


def test_crontab_backend_add_creates_the_log_folder(url, tmp_path, monkeypatch):
    bin_dir, workdir = tmp_path / "bin", tmp_path / "w"
    workdir.mkdir()
    table = tmp_path / "crontab.txt"
    tool(bin_dir, "crontab", fake_crontab(table))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(workdir)
    argv = ["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--backend", "crontab"]
    assert main([*argv, "--", "--target", "cpu"]) == 0
    assert (workdir / "db").is_dir() and "# autocompress-schedule:n" in table.read_text()
    assert main(["schedule", "remove", "--storage", url, "n", "--backend", "crontab"]) == 0
    assert "autocompress-schedule:n" not in table.read_text() and list_schedules(url) == []


def test_a_missing_backend_changes_nothing(url, tmp_path, monkeypatch, capsys):
    add_schedule(url, ScheduleSpec("kept", "0 2 * * *", ("--target", "cpu")))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no crontab, no systemctl
    for backend in ("crontab", "systemd"):
        argv = ["schedule", "add", "--storage", url, "--name", "new", "--cron", "0 2 * * *", "--backend", backend]
        assert main([*argv, "--", "--target", "cpu"]) == 2
        assert main(["schedule", "remove", "--storage", url, "kept", "--backend", backend]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and all(f"--backend {backend}" in e for e in err), err
    assert [s.name for s in list_schedules(url)] == ["kept"]


def test_systemd_failures_are_reported_and_remove_cleans_up(url, tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls.txt"
    tool(bin_dir, "systemctl", 'echo "Failed to connect to bus: No medium found" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))
    units = tmp_path / ".config" / "systemd" / "user"
    argv = ["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--backend", "systemd"]
    assert main([*argv, "--", "--target", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Failed to connect to bus" in err[0]
    assert list_schedules(url) == [] and not list(units.glob("autocompress-n.*"))

    tool(bin_dir, "systemctl", f'echo "$@" >> {calls}\n')
    assert main([*argv, "--", "--target", "cpu"]) == 0
    assert sorted(p.name for p in units.iterdir()) == ["autocompress-n.service", "autocompress-n.timer"]
    assert main(["schedule", "remove", "--storage", url, "n", "--backend", "systemd"]) == 0
    assert list(units.iterdir()) == [] and list_schedules(url) == []
    assert "--user disable --now autocompress-n.timer" in calls.read_text()


# ---------------------------------------------------------------- 11, 13: interruptions, skips


def test_an_interrupted_run_is_recorded_and_releases_its_lock(url):
    spec = ScheduleSpec("n", "* * * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)

    def terminated(_spec):
        signal.raise_signal(signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the run")

    with pytest.raises(KeyboardInterrupt), sigterm_interrupts():
        run_schedule(url, spec, runner=terminated)
    (rec,) = history(url, "n")
    assert rec.status == "interrupted" and rec.ended_at is not None
    assert acquire_lock(url, "n", "next-run", 10)


def test_a_run_skipped_for_the_lock_is_recorded(url):
    spec = ScheduleSpec("n", "* * * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)
    assert acquire_lock(url, "n", "host-a:1", 600)
    rec = run_schedule(url, spec, runner=lambda s: RunOutcome(0))
    assert rec.status == "skipped" and "host-a:1" in rec.error
    assert [r.status for r in history(url, "n")] == ["skipped"]
    # a run longer than the cron's period holds the lock: its fire is skipped once, not at every poll
    with Session(engine_for(url)) as s:
        s.execute(update(ScheduleRow).values(created_at=dt.datetime(2026, 1, 1)))
        s.commit()
    sleeps: list[float] = []
    daemon_loop(url, max_cycles=5, runner=lambda s: RunOutcome(0), sleep=sleeps.append)
    assert [r.status for r in history(url, "n")] == ["skipped"] and all(t >= 1.0 for t in sleeps)


def test_run_due_for_an_unknown_name_says_so(url, capsys):
    assert main(["schedule", "run-due", "--storage", url, "--name", "gone"]) == 2
    assert "no schedule named 'gone'" in capsys.readouterr().err


def test_run_due_with_nothing_due_and_list_of_an_overdue_schedule_say_so(url, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the table on one line per row
    assert main(["schedule", "run-due", "--storage", url]) == 0
    assert capsys.readouterr().out.strip() == "no schedule is due"
    add_schedule(url, ScheduleSpec("n", "0 2 * * *", ("--target", "cpu"), 60))
    with Session(engine_for(url)) as s:
        s.execute(update(ScheduleRow).values(created_at=dt.datetime(2026, 1, 1)))
        s.commit()
    assert main(["schedule", "list", "--storage", url]) == 0
    assert "2026-01-01 02:00 (due: the next run-due runs it)" in capsys.readouterr().out
