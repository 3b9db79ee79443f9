"""``schedule add`` says what a schedule does with its exports: nothing at all under --no-export."""

from __future__ import annotations

from autocompress.cli.main import main
from autocompress.schedule import list_schedules


def test_add_of_a_schedule_that_exports_nothing_says_so(url, tmp_path, monkeypatch, capsys):
    """It said "keeps its newest 5 exports" of a schedule whose runs write none."""
    monkeypatch.chdir(tmp_path)
    add = ["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *"]
    assert main([*add, "--", "--target", "rtx3060", "--no-export"]) == 0
    out = capsys.readouterr().out
    assert "n: added;" in out and "exports nothing (--no-export)" in out and "keeps" not in out
    assert list_schedules(url)[0].args.count("--no-export") == 1
    assert main([*add, "--", "--target", "rtx3060"]) == 0  # exporting again: its retention is back
    out = capsys.readouterr().out
    assert "n: updated;" in out and "keeps its newest 5 exports" in out and "nothing" not in out


def test_list_shows_no_exports_kept_for_a_no_export_schedule(url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--",
                 "--target", "rtx3060", "--no-export"]) == 0
    capsys.readouterr()
    assert main(["schedule", "list", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "none (--no-export)" in out and "newest 5" not in out


def test_list_reads_an_abbreviated_no_export_as_the_search_does(url, tmp_path, monkeypatch, capsys):
    """`--no-exp` runs with no export, but the list said "newest 5" as it looked for the full spelling."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *", "--",
                 "--target", "rtx3060", "--no-exp"]) == 0
    assert "exports nothing (--no-export)" in capsys.readouterr().out
    assert main(["schedule", "list", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "none (--no-export)" in out and "newest 5" not in out
