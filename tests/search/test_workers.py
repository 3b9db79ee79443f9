"""Several workers on one study, and workers killed between the writes of a trial: our tables and
Optuna's always agree, no trial stays RUNNING for ever, and no worker undoes another's work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from autocompress.cli.main import main
import autocompress.search.study as study_mod
from autocompress.search.study import ask, identity, open_storage, open_study, recover_stale_trials, run_heartbeat
from autocompress.store import Objectives, Store, TrialRecord

KILLER = """
import os, signal, sys

import optuna

import autocompress.store.repository as repo

KILL_AT, NUMBER = sys.argv[1], int(sys.argv[2])
writes = []


def written(what):
    writes.append(what)
    if KILL_AT == "second_write" and len(writes) == 1:  # the first of the trial's two writes is done
        os.kill(os.getpid(), signal.SIGKILL)


real_finish, real_tell, real_begin = repo.Store.finish_trial, optuna.Study.tell, repo.Store.begin_trial


def finish_trial(self, **kw):
    real_finish(self, **kw)
    if kw["trial_number"] == NUMBER and kw["state"] == "COMPLETE":
        written("store")


def tell(self, trial, *a, **kw):
    out = real_tell(self, trial, *a, **kw)
    if getattr(trial, "number", trial) == NUMBER:
        written("optuna")
    return out


def begin_trial(self, **kw):
    real_begin(self, **kw)
    if KILL_AT == "begin" and kw["trial_number"] == NUMBER:
        os.kill(os.getpid(), signal.SIGKILL)


repo.Store.finish_trial, optuna.Study.tell, repo.Store.begin_trial = finish_trial, tell, begin_trial
from autocompress.cli.main import main

sys.exit(main(["search", *sys.argv[3:]]))
"""


def _kill_during(tmp_path: Path, run_search_cmd, argv: list[str], kill_at: str, number: int) -> None:
    """Run a search in a child that SIGKILLs itself at ``kill_at`` of trial ``number``."""
    _cmd, env = run_search_cmd
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER))
    proc = subprocess.run([_cmd[0], str(script), kill_at, str(number), *argv], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]


def _both(url: str) -> tuple[dict[int, optuna.trial.FrozenTrial], dict[int, object]]:
    trials = {t.number: t for t in optuna.load_study(study_name="micro", storage=url).trials}
    store = Store(url)
    rows = {r.trial_number: r for r in store.trials("micro")}
    store.close()
    return trials, rows


def test_a_worker_killed_between_the_two_writes_of_a_trial_keeps_its_result_in_both(
    search_argv, run_search_cmd, tmp_path
):
    """Killed after our row said COMPLETE and before Optuna heard it, the trial was failed and
    re-run, and our tables kept calling it COMPLETE. Now Optuna is told first, and our row takes
    Optuna's result when the worker could not write it."""
    argv = search_argv(tmp_path, "--trials", "3", "--steps", "0", "--no-export")
    url = f"sqlite:///{tmp_path}/db/s.db"
    _kill_during(tmp_path, run_search_cmd, argv, "second_write", 1)
    assert main(["search", *argv]) == 0
    trials, rows = _both(url)
    assert {n: t.state.name for n, t in trials.items()} == {n: r.state for n, r in rows.items()}
    assert trials[1].state == TrialState.COMPLETE  # its work stands ...
    assert not any(t.system_attrs.get("failed_trial") == 1 for t in trials.values())  # ... and was not redone
    assert rows[1].quality == trials[1].values[0] and len(rows[1].metrics) == len(trials[1].user_attrs["metrics"])


def _backdate(db: Path, number: int, keep_heartbeat: bool) -> None:
    """Make trial ``number`` look as if its worker died on another machine an hour ago."""
    hour_ago = (datetime.now() - timedelta(hours=1)).isoformat(sep=" ")  # Optuna's times are local
    with sqlite3.connect(db) as c:
        c.execute("UPDATE ac_search_runs SET hostname = 'another-machine', heartbeat_at = datetime('now', '-1 hour')")
        (trial_id,) = c.execute("SELECT trial_id FROM trials WHERE number = ?", (number,)).fetchone()
        c.execute("UPDATE trials SET datetime_start = ? WHERE trial_id = ?", (hour_ago, trial_id))
        if keep_heartbeat:
            c.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour') WHERE trial_id = ?",
                      (trial_id,))
        else:
            c.execute("DELETE FROM trial_heartbeats WHERE trial_id = ?", (trial_id,))


@pytest.mark.parametrize("heartbeat", ["stopped", "never written"])
def test_a_trial_whose_worker_died_elsewhere_before_fine_tuning_is_retried(
    search_argv, run_search_cmd, tmp_path, heartbeat
):
    """A worker killed on another machine before its trial's first heartbeat (which came only
    with fine-tuning) left the trial RUNNING for ever, counted as in flight by every later run."""
    argv = search_argv(tmp_path, "--trials", "3", "--steps", "0", "--no-export")
    db = tmp_path / "db" / "s.db"
    _kill_during(tmp_path, run_search_cmd, argv, "begin", 1)
    _backdate(db, 1, keep_heartbeat=heartbeat == "stopped")
    assert main(["search", *argv]) == 0
    trials, rows = _both(f"sqlite:///{db}")
    assert trials[1].state == TrialState.FAIL and rows[1].state == "FAIL" and "stale" in rows[1].failure_reason
    assert [t.state for t in trials.values() if t.state != TrialState.FAIL] == [TrialState.COMPLETE] * 3
    assert any(t.system_attrs.get("failed_trial") == 1 for t in trials.values())
    # The dead run was 'running' for ever, and later runs took it for a live worker beside them.
    assert [r.status for r in Store(f"sqlite:///{db}").runs("micro")] == ["killed", "finished"]


def test_a_run_beats_while_it_lives_and_a_failed_beat_is_retried(tmp_path, monkeypatch):
    """Another machine judges a run dead by its heartbeat; a beat that fails (a busy database)
    must not end the search, and the next one comes anyway."""
    import time

    store = Store(f"sqlite:///{tmp_path}/s.db")
    run = store.start_run(study_name="micro", target="rtx3060", space_name="s", space_sha256="ab", voice="demo",
                          settings={}, device_info={})
    with store.engine.begin() as c:
        c.exec_driver_sql("UPDATE ac_search_runs SET heartbeat_at = '2026-01-01 00:00:00'")
    real_beat, calls = store.beat_run, []

    def flaky_beat(run_id: int) -> None:
        calls.append(run_id)
        if len(calls) == 2:
            raise RuntimeError("database is locked")
        real_beat(run_id)

    monkeypatch.setattr(study_mod, "HEARTBEAT_INTERVAL_S", 0.01)
    monkeypatch.setattr(store, "beat_run", flaky_beat)
    with run_heartbeat(store, run):
        assert store.runs("micro")[0].heartbeat_at > datetime(2026, 1, 2)  # the first beat is written at once
        deadline = time.monotonic() + 60
        while len(calls) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) >= 4 and store.runs("micro")[0].heartbeat_at > datetime(2026, 1, 2)
    after = len(calls)
    time.sleep(0.1)
    assert len(calls) == after  # the beats end with the block


def _study_with_two_runs(tmp_path: Path):
    """A study, its store, and two live runs of it in this process: (study, store, ours, other's)."""
    url = f"sqlite:///{tmp_path}/db/s.db"
    (tmp_path / "db").mkdir(exist_ok=True)
    store = Store(url)
    study, _ = open_study(open_storage(url), "micro", identity("rtx3060", "s", "ab", {}),
                          optuna.samplers.RandomSampler(), "note", baselines=())
    runs = [store.start_run(study_name="micro", target="rtx3060", space_name="s", space_sha256="ab", voice="demo",
                            settings={}, device_info={}) for _ in range(2)]
    return study, store, runs[0], runs[1]


def _begin(study: optuna.Study, store: Store, run_id: int) -> optuna.Trial:
    trial = ask(study)
    study._storage.record_heartbeat(trial._trial_id)
    store.begin_trial(run_id=run_id, study_name="micro", trial_number=trial.number,
                      optuna_trial_id=trial._trial_id, device_info={})
    return trial


def test_a_trial_another_live_worker_finishes_during_recovery_is_not_recorded_stale(tmp_path, monkeypatch):
    """Recovery took every trial that left RUNNING while Optuna's heartbeat check ran for a stale
    one, and wrote FAIL over the COMPLETE row of a live worker's trial."""
    study, store, ours, other = _study_with_two_runs(tmp_path)
    trial = _begin(study, store, other)
    backend = study._storage._backend

    def check_while_the_other_worker_finishes(study_id: int) -> list[int]:
        study.tell(trial, [0.9, 10.0, 100.0])
        store.finish_trial(study_name="micro", trial_number=trial.number, state="COMPLETE",
                           objectives=Objectives(0.9, 10.0, 100.0))
        return []

    monkeypatch.setattr(backend, "_get_stale_trial_ids", check_while_the_other_worker_finishes)
    assert recover_stale_trials(study, store, ours) == []
    assert store.trial("micro", trial.number).state == "COMPLETE"


def test_a_trial_asked_by_a_worker_starting_during_recovery_is_not_an_orphan(tmp_path, monkeypatch):
    """Recovery read the live runs before Optuna's RUNNING trials: a worker that started and
    asked in between had its trial failed as an orphan of no run."""
    study, store, ours, other = _study_with_two_runs(tmp_path)
    store.finish_run(other, "finished")  # no other worker yet
    real, asked = Store.trials, []

    def trials_while_a_worker_starts(self, *a, **kw):
        if not asked:
            newcomer = self.start_run(study_name="micro", target="rtx3060", space_name="s", space_sha256="ab",
                                      voice="demo", settings={}, device_info={})
            t = ask(study)
            study._storage.record_heartbeat(t._trial_id)
            asked.append((newcomer, t))
        return real(self, *a, **kw)

    monkeypatch.setattr(Store, "trials", trials_while_a_worker_starts)
    assert recover_stale_trials(study, store, ours) == []
    assert study.trials[asked[0][1].number].state == TrialState.RUNNING


def _bare_daemon(tmp_path: Path, study: optuna.Study):
    from autocompress.search.daemon import _Daemon

    daemon = _Daemon.__new__(_Daemon)
    daemon.r = SimpleNamespace(artifacts=tmp_path / "artifacts", study="micro")
    daemon.study = study
    return daemon


def test_workers_sharing_artifacts_keep_the_student_another_one_is_writing(tmp_path):
    """A worker dropping dominated students deleted the folder another worker's trial was writing
    its student into ("trial-0002.tmp-<pid>"), and that trial failed with FileNotFoundError."""
    from autocompress.search.paths import students_dir

    study, store, _ours, other = _study_with_two_runs(tmp_path)
    trial = _begin(study, store, other)
    root = students_dir(tmp_path / "artifacts", "micro")
    writing = root / f"trial-{trial.number:04d}.tmp-{os.getpid() + 1}"
    dead = root / "trial-0099.tmp-1"  # a killed worker's leftover
    for p in (writing, dead):
        p.mkdir(parents=True)
    _bare_daemon(tmp_path, study)._drop_dominated_students()
    assert writing.is_dir() and not dead.exists()


def test_a_student_whose_trial_completes_while_students_are_dropped_is_kept(tmp_path, monkeypatch):
    """The front was read before the trials in flight: a trial completing in between was in
    neither, and its student (on the front) was deleted."""
    from autocompress.search.paths import student_dir

    study, store, _ours, other = _study_with_two_runs(tmp_path)
    trial = _begin(study, store, other)
    trial.set_user_attr("feasible", True)
    student = student_dir(tmp_path / "artifacts", "micro", trial.number)
    student.mkdir(parents=True)
    real = optuna.Study.get_trials

    def get_trials_while_it_completes(self, *a, **kw):
        out = real(self, *a, **kw)
        if trial.number in {t.number for t in out if t.state == TrialState.RUNNING}:
            real_tell(self, trial, [0.9, 10.0, 100.0])
        return out

    real_tell = optuna.Study.tell
    monkeypatch.setattr(optuna.Study, "get_trials", get_trials_while_it_completes)
    _bare_daemon(tmp_path, study)._drop_dominated_students()
    assert study.trials[trial.number].state == TrialState.COMPLETE and student.is_dir()


def test_sigterm_stops_a_search_as_ctrl_c_does(search_argv, run_search_cmd, micro_voice, tmp_path):
    """SIGTERM (kill, systemd, a scheduler) killed the search on the spot: its trial stayed
    RUNNING (for a minute of heartbeat grace, on another machine) and its run 'running' for ever."""
    import time

    cmd, env = run_search_cmd
    slow = tmp_path / "slow-space.toml"  # the seed recipe must still be fine-tuning when the signal comes
    slow.write_text(micro_voice["space"].read_text().replace("warmup_checks = 1", "warmup_checks = 1\npatience = 1000000"))
    argv = search_argv(tmp_path, "--trials", "3", "--steps", "20000", "--space", str(slow), "--no-export")
    db = tmp_path / "db" / "s.db"
    proc = subprocess.Popen([*cmd, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(db, timeout=30) as c:
                if c.execute("SELECT state FROM ac_trials WHERE trial_number = 2").fetchall() == [("RUNNING",)]:
                    break
        except sqlite3.OperationalError:  # not created yet
            pass
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 143, proc.stderr.read()[-2000:]  # 128 + SIGTERM, as a shell reports it
    trials, rows = _both(f"sqlite:///{db}")
    assert trials[2].state == TrialState.FAIL and rows[2].state == "FAIL" and "interrupted" in rows[2].failure_reason
    assert trials[3].state == TrialState.WAITING and trials[3].system_attrs["failed_trial"] == 2  # re-enqueued
    assert [r.status for r in Store(f"sqlite:///{db}").runs("micro")] == ["interrupted"]


def test_a_locked_database_is_one_line_not_a_traceback(search_argv, tmp_path, monkeypatch, capsys):
    """Optuna's own writes failing (a SQLite file another process holds, a full disk, a server
    gone) ended the search with a traceback of Optuna's StorageInternalError."""
    import autocompress.store.engine as engine_mod

    argv = search_argv(tmp_path, "--trials", "1", "--steps", "0", "--no-export")
    assert main(["search", *argv]) == 0
    capsys.readouterr()
    monkeypatch.setattr(engine_mod, "BUSY_TIMEOUT_S", 1)
    holder = sqlite3.connect(tmp_path / "db" / "s.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert main(["search", *[a if a != "1" else "2" for a in argv]]) == 1
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "database is locked" in err and "several workers need PostgreSQL" in err


def _shift_optuna_times(study: optuna.Study, trial_id: int, hours: float) -> None:
    """Write a trial's Optuna times as a worker whose local clock is ``hours`` off this one's would."""
    from optuna.storages._rdb.models import TrialModel

    table = TrialModel.__table__
    with study._storage._backend.engine.begin() as conn:
        row = conn.execute(sa.select(table.c.datetime_start, table.c.datetime_complete)
                           .where(table.c.trial_id == trial_id)).one()  # fmt: skip
        shift = timedelta(hours=hours)
        values = {"datetime_start": row.datetime_start + shift}
        if row.datetime_complete is not None:
            values["datetime_complete"] = row.datetime_complete + shift
        conn.execute(sa.update(table).where(table.c.trial_id == trial_id).values(**values))


def test_a_worker_in_another_time_zone_is_judged_by_our_utc_rows(tmp_path):
    """Optuna records each worker's local time: a just-started trial of a worker five hours behind
    (before its first heartbeat) was failed as silent, and a trial it had just told was mirrored
    into our tables at once, as if its own process could no longer write it."""
    study, store, ours, other = _study_with_two_runs(tmp_path)
    silent = ask(study)  # no heartbeat yet
    store.begin_trial(run_id=other, study_name="micro", trial_number=silent.number,
                      optuna_trial_id=silent._trial_id, device_info={})
    _shift_optuna_times(study, silent._trial_id, -5)
    told = _begin(study, store, other)
    study.tell(told, [0.9, 10.0, 100.0])
    _shift_optuna_times(study, told._trial_id, -5)

    assert recover_stale_trials(study, store, ours) == []
    assert study.trials[silent.number].state == TrialState.RUNNING
    assert store.trial("micro", told.number).state == "RUNNING"  # its own worker writes it

    # An hour later by our rows' UTC clock both are due, whatever the time zone.
    with store._session() as s:
        for row in s.scalars(sa.select(TrialRecord).where(TrialRecord.study_name == "micro")):
            row.started_at = row.started_at - timedelta(hours=1)
        s.commit()
    assert recover_stale_trials(study, store, ours) == [silent.number]
    assert store.trial("micro", told.number).state == "COMPLETE"
