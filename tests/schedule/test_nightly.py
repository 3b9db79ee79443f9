"""A nightly schedule over weeks: editing it after its exports, its log, its timer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import optuna

from autocompress.cli.main import main
from autocompress.schedule import ExportPlan, FrontSignature, export_if_needed, list_schedules

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_a_schedule_can_be_changed_after_its_runs_exported(url, tmp_path, monkeypatch, capsys):
    """A scheduled export leaves runs/, latest and latest.json in --out: changing the schedule
    later must not take that folder for somebody else's files."""
    monkeypatch.chdir(tmp_path)
    add = ["schedule", "add", "--storage", url, "--name", "nightly", "--cron", "0 2 * * *", "--", "--target", "rtx3060"]
    assert main(add) == 0
    out = tmp_path / "exports" / "nightly" / "rtx3060"

    def exporter(plan: ExportPlan, dest: Path) -> list[Path]:
        (dest / "trial-0000").mkdir(parents=True)
        return [dest / "trial-0000"]

    plan = ExportPlan(storage=url, study="nightly", target="rtx3060", out_root=out)
    assert export_if_needed(plan, FrontSignature(1, frozenset({0})), exporter=exporter)
    capsys.readouterr()
    assert main([*add[:-2], "--target", "rtx3060", "--trials", "5"]) == 0, capsys.readouterr().err
    assert list_schedules(url)[0].args[:4] == ("--target", "rtx3060", "--trials", "5")


def test_an_out_that_is_a_file_is_still_refused_at_add(url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").write_text("not a folder")
    argv = ["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--",
            "--target", "rtx3060", "--out", "out"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and "file" in err[0]
    assert list_schedules(url) == []


def _crontab_command(line: str) -> str:
    """The shell command of a crontab line, as cron runs it (no ``%`` in these tests' paths)."""
    assert line.startswith("* * * * * ") and "%" not in line
    return line[len("* * * * * "):line.rindex(" # autocompress-schedule:")]


def test_the_crontab_log_stays_quiet_between_runs_and_is_rotated(url, tmp_path):
    """The line wakes each minute for weeks: a minute when nothing is due writes nothing, and a
    log past its size is moved aside, so the log never grows without bound."""
    import subprocess

    from autocompress.schedule import ScheduleSpec, add_schedule, crontab_line
    from autocompress.schedule._backends import LOG_MAX_KIB, log_path

    spec = ScheduleSpec("nightly", "0 2 * * *", ("--target", "rtx3060", "--study", "nightly"), 3600.0, str(tmp_path))
    add_schedule(url, spec)  # just added: not due before tomorrow's 02:00
    command = _crontab_command(crontab_line(spec, url, tmp_path))
    log = log_path("nightly", tmp_path)

    subprocess.run(["sh", "-c", command], check=True, timeout=120)
    assert log.read_text() == ""  # not "no schedule is due", 1440 times a day

    with open(log, "ab") as fh:  # weeks of runs' output
        fh.truncate((LOG_MAX_KIB + 1) * 1024)
    subprocess.run(["sh", "-c", command], check=True, timeout=120)
    assert Path(f"{log}.1").stat().st_size == (LOG_MAX_KIB + 1) * 1024
    assert log.stat().st_size == 0


def test_a_systemd_timer_that_stops_at_logout_is_told(url, tmp_path, monkeypatch, capsys):
    """Without lingering, systemd stops a user's timers when the user logs out of the box."""
    import os

    from _tools import tool

    bin_dir = tmp_path / "bin"
    tool(bin_dir, "systemctl", "exit 0\n")
    tool(bin_dir, "loginctl", f'[ "$*" = "show-user {os.getuid()} --property=Linger --value" ] && echo no\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))
    argv = ["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--backend", "systemd",
            "--", "--target", "rtx3060"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "log out" in err[0] and "loginctl enable-linger" in err[0]

    tool(bin_dir, "loginctl", "echo yes\n")  # lingering: the timer runs whoever is logged in
    assert main([*argv[:-1], "rtx4090"]) == 0
    assert capsys.readouterr().err == ""


def test_moving_a_schedule_to_an_earlier_hour_today_does_not_run_it_at_once(url):
    """Last night's run at 02:00, then the time moved to one that passed an hour ago: the next
    run is tomorrow at the new time, not an hour-long search right now."""
    from sqlalchemy.orm import Session

    from autocompress.schedule import ScheduleSpec, add_schedule, due_schedules, next_due
    from autocompress.schedule._tables import ScheduleRow, ScheduleRunRow, engine_for, utcnow

    now = utcnow()
    args = ("--target", "rtx3060", "--study", "n")
    add_schedule(url, ScheduleSpec("n", "0 2 * * *", args))
    with Session(engine_for(url)) as s, s.begin():
        s.get(ScheduleRow, "n").created_at = now - dt.timedelta(days=20)  # it has run nightly for weeks
        s.add(ScheduleRunRow(schedule="n", started_at=now - dt.timedelta(hours=2), ended_at=now, status="ok"))
    earlier = now - dt.timedelta(minutes=30)
    assert add_schedule(url, ScheduleSpec("n", f"{earlier.minute} {earlier.hour} * * *", args))
    assert due_schedules(url, now) == []
    assert next_due(url, "n") > now


def test_a_study_deleted_and_made_again_gets_its_own_export(url, tmp_path):
    """The new study numbers its trials from 0 again, so its front may be {0, 1} as the old
    one's was: ``latest`` must not go on holding the deleted study's bundles."""
    from autocompress.schedule import front_signature

    def make() -> None:
        study = optuna.create_study(study_name="nightly", storage=url, directions=["maximize", "minimize"])
        trial = study.ask()
        trial.set_constraint("budget", -1.0)
        study.tell(trial, [0.9, 10.0])

    calls = []

    def exporter(plan: ExportPlan, dest: Path) -> list[Path]:
        calls.append(dest)
        (dest / "trial-0000").mkdir(parents=True)
        return [dest / "trial-0000"]

    plan = ExportPlan(storage=url, study="nightly", target="rtx3060", out_root=tmp_path / "out")
    make()
    first = front_signature(url, "nightly")
    assert export_if_needed(plan, first, exporter=exporter, now=dt.datetime(2026, 1, 1, 2))
    assert export_if_needed(plan, front_signature(url, "nightly"), exporter=exporter) == []  # held already

    optuna.delete_study(study_name="nightly", storage=url)
    make()
    again = front_signature(url, "nightly")
    assert again.front == first.front and again.started != first.started
    assert export_if_needed(plan, again, exporter=exporter, now=dt.datetime(2026, 1, 2, 2))
    assert len(calls) == 2 and (plan.out_root / "latest").resolve() == calls[1].resolve()


def test_a_moved_database_is_named_and_not_made_again(tmp_path, capsys):
    """The crontab line still names the old file: each minute says so, and leaves no empty one there."""
    gone = tmp_path / "db" / "autocompress.db"
    assert main(["schedule", "run-due", "--quiet", "--storage", f"sqlite:///{gone}", "--name", "nightly"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(gone) in err[0] and "nightly" in err[0]
    assert not gone.exists()
