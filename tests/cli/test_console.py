"""Piped output keeps whole table rows: schedule list in a log reads one schedule per line."""

from __future__ import annotations

from autocompress.cli.console import PIPED_WIDTH, output_console
from autocompress.cli.main import main
from autocompress.schedule import ScheduleSpec, add_schedule


def test_piped_console_is_wide_and_columns_wins(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_console().width == PIPED_WIDTH  # pytest captures stdout: not a terminal
    monkeypatch.setenv("COLUMNS", "97")
    assert output_console().width == 97


def test_schedule_list_in_a_pipe_keeps_each_row_on_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    add_schedule(url, ScheduleSpec("nightly-rtx3060", "0 2 * * *", ("--target", "rtx3060", "--trials", "40"), 7200))
    assert main(["schedule", "list", "--storage", url]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "nightly-rtx3060" in line]
    assert len(rows) == 1 and "--target rtx3060 --trials 40" in rows[0], rows


def test_schedule_list_never_shows_a_database_password(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    remote = "postgresql+psycopg://ac:s3cretpw@db.example/ac"
    add_schedule(url, ScheduleSpec("nightly", "0 2 * * *", ("--target", "rtx3060", "--storage", remote), 7200))
    assert main(["schedule", "list", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "s3cretpw" not in out and "postgresql+psycopg://ac:***@db.example/ac" in out
