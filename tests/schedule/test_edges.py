"""Scheduler edges: odd characters in backend lines, crashed runs, re-added schedules, the
daemon's log, and what the schedule commands tell the user."""

from __future__ import annotations

import datetime as dt
import io
import os
import shlex
import sys

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

import autocompress.schedule as schedule_api
from autocompress.cli.main import main
from autocompress.schedule import (
    RunOutcome,
    ScheduleSpec,
    acquire_lock,
    add_schedule,
    crontab_line,
    daemon_loop,
    history,
    next_due,
    remove_schedule,
    run_due,
    run_schedule,
    systemd_units,
)
from autocompress.schedule._tables import ScheduleLockRow, ScheduleRow, ScheduleRunRow, engine_for, utcnow

from _tools import exit_code, fake_crontab, tool

ODD_DIR = "my voice's 100% $HOME"  # a space, a quote, a percent sign, a dollar
ODD_STORAGE = "postgresql+psycopg://me:p%40ss$1@db/ac"  # a percent-encoded "@" in the password




def _add_run(url: str, name: str, started: dt.datetime, status: str) -> None:
    with Session(engine_for(url)) as s, s.begin():
        s.execute(insert(ScheduleRunRow).values(schedule=name, started_at=started, status=status))




# ---------------------------------------------------------------- backends: odd characters


def _as_cron_runs(line: str) -> str:
    """The shell command cron runs for a crontab ``line``: ``\\%`` is a percent sign, a bare
    ``%`` ends the command (what follows is its stdin)."""
    command = line.split(None, 5)[5]
    out, i = [], 0
    while i < len(command):
        if command[i] == "\\" and command[i + 1 : i + 2] == "%":
            out.append("%")
            i += 2
            continue
        if command[i] == "%":
            break
        out.append(command[i])
        i += 1
    return "".join(out)


def test_the_crontab_line_keeps_percent_signs_of_the_storage_and_folder(tmp_path):
    workdir = tmp_path / ODD_DIR
    line = crontab_line(ScheduleSpec("n", "0 2 * * *", ("--target", "cpu")), ODD_STORAGE, workdir)
    words = shlex.split(_as_cron_runs(line), comments=True)
    assert words[:3] == ["mkdir", "-p", str(workdir / "db")]
    assert words[words.index("cd") + 1] == str(workdir)
    assert words[words.index("--storage") + 1] == ODD_STORAGE
    assert words[-3:] == [">>", str(workdir / "db" / "schedule-n.log"), "2>&1"]


def _systemd_word(text: str) -> str:
    """The argument a unit's command line gives for one double-quoted word (specifiers,
    ``$$`` and C escapes undone)."""
    assert text[0] == text[-1] == '"' and len(text) >= 2, text
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        pair = body[i : i + 2]
        if pair in ("\\\\", '\\"', "%%", "$$"):
            out.append(pair[1])
            i += 2
            continue
        assert body[i] not in '\\"%$', f"unescaped {body[i]!r} in {text}"
        out.append(body[i])
        i += 1
    return "".join(out)


def test_the_systemd_service_passes_odd_folders_and_urls_whole(tmp_path):
    workdir = tmp_path / ODD_DIR
    service = systemd_units(ScheduleSpec("n", "0 2 * * *", ("--target", "cpu")), ODD_STORAGE, workdir)[
        "autocompress-n.service"]
    (exec_line,) = [ln for ln in service.splitlines() if ln.startswith("ExecStart=")]
    prefix = "ExecStart=/bin/sh -c "
    assert exec_line.startswith(prefix)
    words = shlex.split(_systemd_word(exec_line.removeprefix(prefix)))
    assert words[:2] == ["cd", str(workdir)]
    assert words[words.index("--storage") + 1] == ODD_STORAGE and words[-2:] == ["--name", "n"]


# ---------------------------------------------------------------- runs: crashes, re-added schedules


def test_a_run_whose_process_died_is_marked_interrupted_by_the_next_run(url):
    spec = ScheduleSpec("n", "* * * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)
    _add_run(url, "n", utcnow() - dt.timedelta(days=1), "running")  # killed -9: no end recorded
    assert acquire_lock(url, "n", "other-host:1", 600)
    assert run_schedule(url, spec, runner=lambda s: RunOutcome(0)).status == "skipped"
    assert [r.status for r in history(url, "n")] == ["skipped", "running"]  # the holder may be it

    with Session(engine_for(url)) as s, s.begin():  # the holder's lease ran out
        s.execute(update(ScheduleLockRow).values(expires_at=utcnow() - dt.timedelta(minutes=1)))
    assert run_schedule(url, spec, runner=lambda s: RunOutcome(0)).status == "ok"
    ok, skipped, dead = history(url, "n")
    assert (ok.status, skipped.status, dead.status) == ("ok", "skipped", "interrupted")
    assert "without recording" in dead.error and dead.ended_at is None


def test_a_schedule_added_again_after_removal_waits_for_its_next_time(url):
    spec = ScheduleSpec("n", "0 2 * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)
    _add_run(url, "n", utcnow() - dt.timedelta(days=10), "ok")
    remove_schedule(url, "n")
    add_schedule(url, spec)
    assert next_due(url, "n") > utcnow()
    assert run_due(url, runner=lambda s: pytest.fail("ran at once")) == []


# ---------------------------------------------------------------- the daemon's log


def test_the_daemons_lines_reach_a_redirected_stdout_at_once(url, monkeypatch):
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8"))  # a file: block-buffered
    add_schedule(url, ScheduleSpec("n", "* * * * *", ("--target", "cpu"), 60))
    with Session(engine_for(url)) as s, s.begin():
        s.execute(update(ScheduleRow).values(created_at=utcnow() - dt.timedelta(minutes=5)))
    seen = []

    def fake_loop(storage, poll_s):
        seen.append(raw.getvalue().decode())
        daemon_loop(storage, max_cycles=1, runner=lambda s: RunOutcome(0))
        seen.append(raw.getvalue().decode())
        raise KeyboardInterrupt

    monkeypatch.setattr(schedule_api, "daemon_loop", fake_loop)
    assert main(["daemon", "--storage", url]) == 130
    assert "watching schedules" in seen[0] and "n: ok" in seen[1]


# ---------------------------------------------------------------- what the commands say


def test_schedule_without_an_action_shows_its_own_help(capsys):
    assert main(["schedule"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: autocompress schedule") and "run-due" in out


def test_the_cron_help_says_utc(capsys):
    assert exit_code(["schedule", "add", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "cron expression in UTC" in out and "-- SEARCH_ARGS" in out


def test_list_shows_the_time_budget_each_run_gets(url, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    add_schedule(url, ScheduleSpec("n", "0 2 * * *", ("--target", "cpu", "--timeout", "120"), 3600))
    assert main(["schedule", "list", "--storage", url]) == 0
    (row,) = [ln for ln in capsys.readouterr().out.splitlines() if " n " in ln]
    cells = [c.strip() for c in row.split("│")]
    assert cells[3] == "120"


def test_remove_without_its_backend_says_the_backend_still_wakes(url, tmp_path, monkeypatch, capsys):
    bin_dir, table = tmp_path / "bin", tmp_path / "crontab.txt"
    tool(bin_dir, "crontab", fake_crontab(table))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    argv = ["schedule", "add", "--storage", url, "--cron", "0 2 * * *", "--backend", "crontab"]
    assert main([*argv, "--name", "n", "--", "--target", "cpu"]) == 0
    units = tmp_path / ".config" / "systemd" / "user"
    units.mkdir(parents=True)
    (units / "autocompress-n.timer").write_text("[Timer]\n")
    capsys.readouterr()

    assert main(["schedule", "remove", "--storage", url, "n"]) == 0
    err = capsys.readouterr().err
    assert "schedule remove n --backend crontab" in err and "schedule remove n --backend systemd" in err
    assert main(["schedule", "remove", "--storage", url, "n", "--backend", "crontab"]) == 0
    assert "autocompress-schedule:n" not in table.read_text()


def test_the_daemon_outlives_a_database_that_is_out_of_reach(url, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from autocompress.schedule import _backends

    real, calls = _backends.run_due, []

    def flaky(storage, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("SELECT 1", {}, ConnectionError("connection refused\nDETAIL: more"))
        return real(storage, **kwargs)

    monkeypatch.setattr(_backends, "run_due", flaky)
    add_schedule(url, ScheduleSpec("n", "* * * * *", ("--target", "cpu"), 60))
    with Session(engine_for(url)) as s, s.begin():
        s.execute(update(ScheduleRow).values(created_at=utcnow() - dt.timedelta(minutes=5)))
    logged: list[str] = []
    runs = daemon_loop(url, max_cycles=3, runner=lambda s: RunOutcome(0), sleep=lambda t: None, log=logged.append)
    assert runs == 1 and len(calls) == 3
    assert logged == ["cannot use the schedules' database, trying again every 30 s: connection refused", "n: ok"]


def test_a_failed_lock_renewal_does_not_end_the_renewals(url, monkeypatch):
    import threading

    from sqlalchemy.exc import OperationalError

    from autocompress.schedule import _core

    monkeypatch.setattr(_core, "LOCK_TTL_S", 0.05)  # renewals every 10 ms
    renewals, enough = [], threading.Event()

    def renew(*args):
        renewals.append(1)
        if len(renewals) == 1:
            raise OperationalError("UPDATE", {}, ConnectionError("server closed the connection"))
        if len(renewals) >= 3:
            enough.set()
        return True

    monkeypatch.setattr(_core, "renew_lock", renew)
    spec = ScheduleSpec("n", "* * * * *", ("--target", "cpu"), 60)
    add_schedule(url, spec)
    rec = run_schedule(url, spec, runner=lambda s: RunOutcome(0 if enough.wait(30) else 1))
    assert rec.status == "ok" and len(renewals) >= 3


def test_a_crontab_that_cannot_be_read_is_never_overwritten(url, tmp_path, monkeypatch):
    """Any failure of ``crontab -l`` read as an empty table: adding a schedule then replaced
    every line the user had."""
    bin_dir, table = tmp_path / "bin", tmp_path / "crontab.txt"
    table.write_text("0 5 * * * backup.sh\n")
    tool(bin_dir, "crontab", f'if [ "$1" = "-l" ]; then echo "crontab: Permission denied" >&2; exit 1; '
                              f'else cat > {table}; fi\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    argv = ["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--backend", "crontab",
            "--", "--target", "cpu"]
    assert main(argv) == 2
    assert table.read_text() == "0 5 * * * backup.sh\n"
