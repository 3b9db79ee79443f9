"""A study deleted (with ``optuna delete-study`` or the dashboard) and searched again under its
name starts without the deleted study's students; a worker joining a study removes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import autocompress.search.daemon as daemon_mod
from autocompress.cli.main import main


class _NoTrials:
    """A trial runner that loads nothing: these searches run no trial."""

    def labels(self) -> dict[str, str]:
        return {}

    def describe(self) -> dict[str, str]:
        return {}


@pytest.fixture
def students_at_loop(monkeypatch, tmp_path: Path) -> list[list[str]]:
    """For each search: the study's student folders when its trials would start."""
    seen: list[list[str]] = []
    root = tmp_path / "db" / "artifacts" / "students" / "micro"

    def loop(self, t_start: float) -> bool:  # noqa: ANN001
        seen.append(sorted(p.name for p in root.iterdir()) if root.is_dir() else [])
        return False

    monkeypatch.setattr(daemon_mod, "default_runner_factory", lambda resolved, cache, progress=None: _NoTrials())
    monkeypatch.setattr(daemon_mod._Daemon, "_loop", loop)
    return seen


def test_a_new_study_starts_without_the_students_of_a_deleted_namesake(search_argv, tmp_path, students_at_loop):
    """The deleted study's trial-0003 student stayed, and a new trial 3 repeating an earlier
    plan (no student of its own) was exported with it."""
    artifacts = tmp_path / "db" / "artifacts"
    old = artifacts / "students" / "micro" / "trial-0003"
    other = artifacts / "students" / "other" / "trial-0003"  # another study's: not ours to remove
    for folder in (old, other):
        folder.mkdir(parents=True)
        (folder / "student.pt").write_bytes(b"old")
    argv = ["search", *search_argv(tmp_path, "--no-export"), "--trials", "1"]
    assert main(argv) == 0
    assert students_at_loop == [[]] and not old.exists() and other.is_dir()
    # A second worker joining the study (it exists now) keeps the study's students.
    old.mkdir(parents=True)
    assert main(argv) == 0
    assert students_at_loop[-1] == ["trial-0003"] and old.is_dir()


def test_a_leftover_student_that_cannot_be_removed_stops_the_search_before_the_study_is_made(
    search_argv, tmp_path, students_at_loop, monkeypatch, capsys
):
    import optuna

    old = tmp_path / "db" / "artifacts" / "students" / "micro" / "trial-0003"
    old.mkdir(parents=True)
    real = daemon_mod.shutil.rmtree

    def rmtree(path, ignore_errors=False):  # noqa: ANN001, ANN202 - a folder this process may not empty
        if Path(path) != old.parent:
            real(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(daemon_mod.shutil, "rmtree", rmtree)
    assert main(["search", *search_argv(tmp_path, "--no-export"), "--trials", "1"]) != 0
    err = capsys.readouterr().err
    assert f"cannot remove {old.parent}" in err and err.strip().count("\n") == 0
    assert students_at_loop == []
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path}/db/s.db") == []  # a rerun tries again
