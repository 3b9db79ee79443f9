"""A schedule keeps only its newest export folders, and deletes nothing it did not write."""

from __future__ import annotations

import datetime as dt
import json
import logging
import types
from pathlib import Path

import optuna
import sqlalchemy as sa

from autocompress.cli.main import main
from autocompress.schedule import (
    ExportPlan,
    FrontSignature,
    ScheduleSpec,
    SubprocessRunner,
    _core,
    _front,
    add_schedule,
    export_if_needed,
    list_schedules,
    switch_latest,
)
from autocompress.schedule._front import prune_exports

from _tools import exit_code

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _exporter(plan: ExportPlan, out: Path) -> list[Path]:
    (out / "trial-0000").mkdir(parents=True)
    (out / "trial-0000" / "model.onnx").write_bytes(b"x" * 16)
    return [out / "trial-0000"]


def _plan(tmp_path: Path, keep: int, schedule: str | None = "nightly") -> ExportPlan:
    return ExportPlan(storage="sqlite:///unused.db", study="s", target="rtx3060", out_root=tmp_path / "out",
                      schedule=schedule, keep=keep)


def _export_fronts(plan: ExportPlan, count: int, first: int = 0) -> list[Path]:
    """Export ``count`` successive fronts (a day apart); return the run folders written."""
    written = []
    for k in range(first, first + count):
        (bundle,) = export_if_needed(plan, FrontSignature(k + 1, frozenset({k})), exporter=_exporter,
                                     now=dt.datetime(2026, 1, 1 + k, 2))
        written.append(bundle.parent)
    return written


def _runs(plan: ExportPlan) -> list[str]:
    return sorted(p.name for p in (plan.out_root / "runs").iterdir() if not p.name.startswith("."))


def test_after_n_plus_two_front_changes_only_the_newest_n_remain(tmp_path):
    plan = _plan(tmp_path, keep=3)
    written = _export_fronts(plan, 3 + 2)
    assert _runs(plan) == [w.name for w in written[-3:]]
    assert (plan.out_root / "latest").resolve() == written[-1].resolve()
    assert (written[-1] / "trial-0000" / "model.onnx").is_file()
    assert sorted(p.name for p in (plan.out_root / "runs").glob(".*")) == [
        f".{w.name}.schedule.json" for w in written[-3:]]  # the deleted folders' markers went with them


def test_zero_keeps_every_export(tmp_path):
    plan = _plan(tmp_path, keep=0)
    written = _export_fronts(plan, 4)
    assert _runs(plan) == [w.name for w in written]


def test_files_and_folders_the_schedule_did_not_write_are_never_deleted(tmp_path):
    plan = _plan(tmp_path, keep=1)
    root, runs = plan.out_root, plan.out_root / "runs"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    runs.mkdir(parents=True)
    mine = [runs / "20200101-000000", root / "notes", runs / "by-hand"]  # the first looks just like a stamp
    for folder in mine:
        folder.mkdir()
        (folder / "file.txt").write_text("mine")
    (runs / "readme.txt").write_text("mine")
    (root / "README").write_text("mine")
    # another schedule's folder, and markers of ours that point elsewhere: none of them is ours to delete
    (runs / "20200102-000000").mkdir()
    (runs / ".20200102-000000.schedule.json").write_text(json.dumps({"schedule": "other", "dir": "20200102-000000"}))
    (runs / ".x.schedule.json").write_text(json.dumps({"schedule": "nightly", "dir": "../notes"}))
    (runs / "..schedule.json").write_text(json.dumps({"schedule": "nightly", "dir": ""}))
    (runs / "20200103-000000").symlink_to(outside)
    (runs / ".20200103-000000.schedule.json").write_text(json.dumps({"schedule": "nightly", "dir": "20200103-000000"}))
    (runs / ".broken.schedule.json").write_text("{not json")

    written = _export_fronts(plan, 3)

    assert _runs(plan) == sorted(["20200101-000000", "20200102-000000", "20200103-000000", "by-hand", "readme.txt",
                                  written[-1].name])
    for folder in [*mine, outside]:
        assert (folder / ("keep.txt" if folder == outside else "file.txt")).read_text() == "mine"
    assert (root / "README").is_file() and (runs / "readme.txt").is_file()


def test_the_folder_latest_points_at_is_kept(tmp_path):
    written = _export_fronts(_plan(tmp_path, keep=0), 3)
    switch_latest(tmp_path / "out", written[1])  # latest moved back by hand to an older export
    assert prune_exports(_plan(tmp_path, keep=1), written[2]) == [written[0]]
    assert _runs(_plan(tmp_path, keep=1)) == [written[1].name, written[2].name]


def test_a_folder_that_cannot_be_deleted_is_logged_once_and_the_export_succeeds(tmp_path, monkeypatch, caplog):
    plan = _plan(tmp_path, keep=1)
    written = _export_fronts(plan, 1)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    real_rmtree = _front.shutil.rmtree
    monkeypatch.setattr(_front.shutil, "rmtree", refuse)
    with caplog.at_level(logging.WARNING, logger=_front.__name__):
        written += _export_fronts(plan, 1, first=1)
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and written[0].name in record.getMessage()
    assert "Permission denied" in record.getMessage()
    assert _runs(plan) == [w.name for w in written]  # kept, with its marker: tried again next time
    monkeypatch.setattr(_front.shutil, "rmtree", real_rmtree)
    written += _export_fronts(plan, 1, first=2)
    assert _runs(plan) == [written[-1].name]


def test_a_scheduled_run_applies_the_schedules_keep_setting(tmp_path, monkeypatch):
    """Through the runner: a run that changes the front exports, then deletes the oldest beyond keep."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])

    def fake_child(command, cwd, limit_s):  # each run's trial dominates every earlier one: a new front
        k = len(study.trials)
        trial = study.ask()
        trial.set_constraint("budget", -1.0)
        study.tell(trial, [0.5 + 0.01 * k, 10.0 - k])
        return _core.ChildResult(code=0, last_error=None, stopped=False)

    clock = iter(dt.datetime(2026, 1, 1 + k, 2) for k in range(10))
    monkeypatch.setattr(_core, "run_child", fake_child)
    monkeypatch.setattr(_front, "dt", types.SimpleNamespace(datetime=types.SimpleNamespace(now=lambda: next(clock))))
    spec = ScheduleSpec("nightly", "0 2 * * *", ("--target", "rtx3060", "--study", "s", "--storage", storage,
                                                 "--out", "out"), 3600, workdir=str(tmp_path), keep_exports=2)
    outcomes = [SubprocessRunner(exporter=_exporter)(spec) for _ in range(4)]
    assert all(o.exit_code == 0 and o.front_changed and len(o.exports) == 1 for o in outcomes)
    runs = sorted(p.name for p in (tmp_path / "out" / "runs").iterdir() if not p.name.startswith("."))
    assert runs == ["20260103-020000", "20260104-020000"]
    assert Path(outcomes[-1].exports[0]).is_dir()


def test_a_schedule_stored_before_the_setting_loads_with_the_default(url, capsys, monkeypatch):
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the table as older versions made it: no keep_exports column
        conn.execute(sa.text("CREATE TABLE ac_schedules (name VARCHAR(128) PRIMARY KEY, cron VARCHAR(128), "
                             "args_json TEXT, timeout_s FLOAT, created_at DATETIME, workdir TEXT)"))
        conn.execute(sa.text("INSERT INTO ac_schedules VALUES ('old', '0 2 * * *', "
                             "'[\"--target\", \"rtx3060\", \"--study\", \"old\"]', 3600, '2026-01-01 00:00:00', NULL)"))
    engine.dispose()
    (spec,) = list_schedules(url)
    assert spec.keep_exports == _core.DEFAULT_KEEP_EXPORTS == 5
    assert add_schedule(url, spec) is False  # the same schedule: nothing changed
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["schedule", "list", "--storage", url]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "old" in line]
    assert "newest 5" in row


def test_add_sets_keep_exports_and_an_update_without_the_flag_keeps_it(url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")
    add = ["schedule", "add", "--storage", url, "--name", "n", "--cron", "0 2 * * *"]
    assert main([*add, "--", "--target", "rtx3060"]) == 0
    out = capsys.readouterr().out
    assert "n: added;" in out and "keeps its newest 5 exports" in out
    assert main([*add, "--keep-exports", "0", "--", "--target", "rtx3060"]) == 0
    out = capsys.readouterr().out  # the same schedule changed: not a second one added
    assert "n: updated;" in out and "keeps all its exports" in out
    assert main([*add, "--keep-exports", "0", "--", "--target", "rtx3060"]) == 0
    assert "n: unchanged;" in capsys.readouterr().out
    assert main([*add, "--", "--target", "rtx3060", "--trials", "3"]) == 0  # changing something else
    assert list_schedules(url)[0].keep_exports == 0
    assert main(["schedule", "list", "--storage", url]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if " n " in line]
    assert " all " in row
    assert exit_code([*add, "--keep-exports", "-1", "--", "--target", "rtx3060"]) == 2
    assert "--keep-exports" in capsys.readouterr().err
    assert list_schedules(url)[0].keep_exports == 0


def test_a_plan_without_a_schedule_deletes_nothing(tmp_path):
    plan = _plan(tmp_path, keep=1, schedule=None)
    written = _export_fronts(plan, 3)
    assert _runs(plan) == [w.name for w in written]
    assert not list((plan.out_root / "runs").glob(".*"))
