"""Store contract: every test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import optuna
import pytest
import sqlalchemy as sa

from autocompress.exceptions import StoreError
from autocompress.store import (
    Base,
    Migration,
    Objectives,
    Store,
    create_store_engine,
    hash_folder,
    migrate,
    schema_version,
)
from autocompress.store.migrations import MIGRATIONS


@dataclass
class M:
    name: str
    value: float
    unit: str
    kind: str
    device: str


def _run(store: Store, study: str = "s") -> int:
    return store.start_run(
        study_name=study, target="rtx3060", space_name="demo", space_sha256="ab" * 32, voice="demo",
        settings={"trials": 3}, device_info={"device": "cpu"},
    )


def test_migrated_schema_equals_the_orm_tables(db_url):
    store = Store(db_url)
    insp = sa.inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        got = {c["name"]: c["nullable"] for c in insp.get_columns(table.name)}
        want = {c.name: c.nullable for c in table.columns}
        assert got == want, table.name
    assert schema_version(store.engine) == len(MIGRATIONS)


def test_trial_metrics_are_labelled_and_round_trip(db_url):
    store = Store(db_url)
    run = _run(store)
    store.begin_trial(run_id=run, study_name="s", trial_number=0, optuna_trial_id=7, device_info={"d": "cpu"},
                      plan={"gpt": {"bits": 8}}, plan_summary="gpt int8")
    store.finish_trial(
        study_name="s", trial_number=0, state="COMPLETE", objectives=Objectives(0.9, 120.0, 800.0), feasible=True,
        metrics=[M("latency_e2e", 120.0, "ms", "projected", "rtx3060"), M("quality", 0.9, "score", "measured", "cpu")],
        finetune_steps=10, finetune_curve=[(0, 1.5), (10, 0.5)],
    )
    (row,) = store.trials("s")
    assert (row.quality, row.latency_ms, row.memory_mb, row.feasible) == (0.9, 120.0, 800.0, True)
    assert {(m.name, m.kind, m.device) for m in row.metrics} == {
        ("latency_e2e", "projected", "rtx3060"), ("quality", "measured", "cpu")
    }
    assert row.plan == {"gpt": {"bits": 8}} and row.finetune_curve == [[0.0, 1.5], [10.0, 0.5]]


def test_a_metric_without_a_valid_label_or_value_is_refused(db_url):
    store = Store(db_url)
    run = _run(store)
    store.begin_trial(run_id=run, study_name="s", trial_number=0, optuna_trial_id=1, device_info={})
    with pytest.raises(StoreError, match="labelled"):
        store.finish_trial(study_name="s", trial_number=0, state="COMPLETE", metrics=[M("x", 1.0, "", "guessed", "cpu")])
    with pytest.raises(StoreError, match="not finite"):
        store.finish_trial(study_name="s", trial_number=0, state="COMPLETE",
                           metrics=[M("x", float("nan"), "", "measured", "cpu")])
    # The database refuses a bad label too, not only the Python check.
    with store.engine.begin() as c, pytest.raises(sa.exc.IntegrityError):
        c.execute(sa.text("INSERT INTO ac_trial_metrics (trial_id, name, value, unit, kind, device) "
                          "VALUES (:t, 'y', 1.0, '', 'guessed', 'cpu')"), {"t": store.trials("s")[0].id})


def test_failed_trial_keeps_its_reason_and_restart_replaces_metrics(db_url):
    store = Store(db_url)
    run = _run(store)
    store.begin_trial(run_id=run, study_name="s", trial_number=3, optuna_trial_id=4, device_info={})
    store.finish_trial(study_name="s", trial_number=3, state="FAIL", failure_reason="fine-tune loss is NaN at step 2")
    assert store.trial("s", 3).failure_reason == "fine-tune loss is NaN at step 2"
    store.begin_trial(run_id=run, study_name="s", trial_number=3, optuna_trial_id=4, device_info={})
    store.finish_trial(study_name="s", trial_number=3, state="COMPLETE", metrics=[M("a", 1.0, "", "measured", "cpu")])
    store.finish_trial(study_name="s", trial_number=3, state="COMPLETE", metrics=[M("a", 2.0, "", "measured", "cpu")])
    row = store.trial("s", 3)
    assert row.failure_reason is None and [m.value for m in row.metrics] == [2.0]


def test_bundle_rows_hash_the_folder(db_url, tmp_path):
    store = Store(db_url)
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    (folder / "sub").mkdir()
    (folder / "sub" / "w.bin").write_bytes(b"\x00" * 10)
    row = store.record_bundle(study_name="s", trial_number=1, target="rtx3060", kind="checkpoint", path=folder)
    assert row.sha256 == hash_folder(folder)[0] and row.size_bytes == 12
    (folder / "sub" / "w.bin").write_bytes(b"\x01" * 10)
    assert hash_folder(folder)[0] != row.sha256
    assert [b.path for b in store.bundles("s", "rtx3060")] == [str(folder.resolve())]


def test_optuna_tables_live_beside_ours(db_url):
    store = Store(db_url)
    study = optuna.create_study(storage=db_url, study_name="beside", directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=2)
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"trials", "studies", "ac_trials", "ac_search_runs"} <= names
    assert Store(db_url).schema_version == len(MIGRATIONS)  # reopening is a no-op


def test_forward_migration_applies_only_new_steps(db_url):
    engine = create_store_engine(db_url)
    assert migrate(engine, MIGRATIONS) == len(MIGRATIONS)

    def add_note(conn):
        conn.exec_driver_sql("ALTER TABLE ac_search_runs ADD COLUMN note TEXT")

    calls = []
    new = len(MIGRATIONS) + 1
    steps = (*MIGRATIONS, Migration(new, "run notes", lambda c: (calls.append(new), add_note(c))))
    assert migrate(engine, steps) == new and calls == [new]
    assert migrate(engine, steps) == new and calls == [new]
    assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("ac_search_runs")}
    with pytest.raises(StoreError, match=f"version {new}, this autocompress knows up to {new - 1}"):
        migrate(engine, MIGRATIONS)


def test_a_version_1_database_gains_run_heartbeats_and_keeps_its_rows(db_url):
    """A store written before run heartbeats: its runs stay, without a heartbeat, and are never
    judged dead by heartbeat (they may be live searches of an older autocompress elsewhere)."""
    engine = create_store_engine(db_url)
    assert migrate(engine, MIGRATIONS[:1]) == 1
    with engine.begin() as c:
        c.execute(sa.text(
            "INSERT INTO ac_search_runs (study_name, target, space_name, space_sha256, voice, settings, device_info, "
            "hostname, pid, status, started_at) VALUES ('s', 'rtx3060', 'demo', 'ab', 'demo', '{}', '{}', "
            "'another-machine', 1, 'running', :t)"), {"t": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    engine.dispose()
    store = Store(db_url)
    assert store.schema_version == len(MIGRATIONS)
    (run,) = store.runs("s")
    assert run.heartbeat_at is None and run.hostname == "another-machine"
    assert store.reap_dead_runs("s", silent_after_s=60) == []
    store.beat_run(run.id)
    assert store.runs("s")[0].heartbeat_at is not None


def test_a_run_elsewhere_is_dead_when_its_heartbeat_stops(db_url):
    store = Store(db_url)
    quiet, beating = _run(store), _run(store)
    now = datetime.now(timezone.utc)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE ac_search_runs SET hostname = 'another-machine', pid = 1"))
        c.execute(sa.text("UPDATE ac_search_runs SET heartbeat_at = :t WHERE id = :i"),
                  {"t": now - timedelta(minutes=5), "i": quiet})
    assert store.reap_dead_runs("s") == []  # without a limit, only this machine's processes are judged
    assert store.reap_dead_runs("s", silent_after_s=60) == [quiet]
    assert {r.id: r.status for r in store.runs("s")} == {quiet: "killed", beating: "running"}


def test_dead_runs_are_reaped_and_live_ones_kept(db_url):
    store = Store(db_url)
    live = _run(store)
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = _run(store)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE ac_search_runs SET pid = :p WHERE id = :i"), {"p": int(proc.stdout), "i": dead})
    assert store.reap_dead_runs("s") == [dead]
    status = {r.id: r.status for r in store.runs("s")}
    assert status == {live: "running", dead: "killed"}


def test_a_run_in_another_pid_namespace_under_our_host_name_is_judged_by_its_heartbeat(db_url):
    """Containers sharing a host name (docker --network host) have pid namespaces of their own: a
    live worker in one was reaped by a worker in another, where its pid did not exist."""
    import json

    from autocompress.store.repository import process_space

    store = Store(db_url)
    assert process_space()  # Linux: boot id and pid namespace
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    elsewhere, here = _run(store), _run(store)
    with store.engine.begin() as c:  # both pids are gone from this namespace
        c.execute(sa.text("UPDATE ac_search_runs SET pid = :p"), {"p": int(proc.stdout)})
        c.execute(sa.text("UPDATE ac_search_runs SET device_info = :d WHERE id = :i"),
                  {"d": json.dumps({"process_space": "another-boot/pid:[1]"}), "i": elsewhere})
    assert store.reap_dead_runs("s", silent_after_s=60) == [here]  # the other container's run beats on
    assert {r.id: r.status for r in store.runs("s")} == {elsewhere: "running", here: "killed"}
    assert {r.id: r.device_info["process_space"] for r in store.runs("s")}[here] == process_space()  # recorded


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/deep/er/x.db")
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    assert (tmp_path / "deep" / "er" / "x.db").exists()


def test_bad_urls_fail_with_one_line(tmp_path):
    with pytest.raises(StoreError, match="not a database URL") as bad:
        Store("not a url")
    with pytest.raises(StoreError, match="cannot connect") as unreachable:
        Store("postgresql+psycopg://nobody@/nodb?host=/nonexistent-socket-dir&port=1")
    for e in (bad.value, unreachable.value):
        assert "\n" not in str(e) and len(str(e)) < 400
    assert list(tmp_path.iterdir()) == []  # nothing was created on the way


def _open_store_after(barrier, url: str) -> None:  # in a forked child
    barrier.wait()
    Store(url).close()


def _count_under_lock(barrier, url: str, counter: str) -> None:  # in a forked child
    import time
    from pathlib import Path

    from autocompress.store import create_store_engine, exclusive

    engine = create_store_engine(url)
    barrier.wait()
    with exclusive(engine, "test:counter"):
        value = int(Path(counter).read_text())
        time.sleep(0.05)  # a read-modify-write that loses updates unless the lock holds
        Path(counter).write_text(str(value + 1))
    engine.dispose()


def test_workers_starting_together_migrate_once_and_the_lock_excludes(db_url, tmp_path):
    """Several processes opening one new database: none fails in the schema migration."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_store_after, args=(barrier, db_url)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert Store(db_url).schema_version == len(MIGRATIONS)

    counter = tmp_path / "counter"
    counter.write_text("0")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_count_under_lock, args=(barrier, db_url, str(counter))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0] and counter.read_text() == "3"


def test_a_new_file_switched_to_wal_by_several_workers_retries_a_busy_answer():
    """SQLite answers "database is locked" at once, without its busy wait, when switching a
    new file to WAL could deadlock with another process doing the same (seen on CI, about one
    opening in 240 with six workers)."""
    import sqlite3

    from autocompress.store.engine import _sqlite_pragmas

    class Cursor:
        def __init__(self) -> None:
            self.busy, self.ran = 2, []

        def execute(self, sql: str) -> None:
            if "journal_mode" in sql and self.busy:
                self.busy -= 1
                raise sqlite3.OperationalError("database is locked")
            self.ran.append(sql)

        def close(self) -> None:
            pass

    cursor = Cursor()
    _sqlite_pragmas(type("Conn", (), {"cursor": lambda self: cursor})(), None)
    assert "PRAGMA journal_mode=WAL" in cursor.ran and cursor.busy == 0


def test_a_url_that_does_not_parse_never_shows_its_password():
    """The message about a malformed URL quoted it whole, password included (and it reaches logs
    and `schedule history`)."""
    with pytest.raises(StoreError, match="not a database URL") as bad:
        Store("postgresql+psycopg://worker:s3cret-pw@db.example:port/study")
    assert "s3cret-pw" not in str(bad.value) and "worker:***@db.example" in str(bad.value)
    assert bad.value.__cause__ is None  # nor in a chained traceback's message


def test_a_failed_migration_step_leaves_the_previous_schema(db_url):
    """Python's sqlite3 opens no transaction before DDL: a step failing after its ALTER TABLE kept
    the new column without recording the version, and every later open failed with "duplicate
    column name" for ever."""
    engine = create_store_engine(db_url)
    assert migrate(engine, MIGRATIONS[:1]) == 1

    def add_heartbeat_then_fail(conn):
        MIGRATIONS[1].apply(conn)
        raise sa.exc.OperationalError("INSERT INTO ac_schema_migrations", {}, Exception("disk I/O error"))

    with pytest.raises(StoreError, match="disk I/O error"):
        migrate(engine, (MIGRATIONS[0], Migration(2, "run heartbeat", add_heartbeat_then_fail)))
    assert "heartbeat_at" not in {c["name"] for c in sa.inspect(engine).get_columns("ac_search_runs")}
    assert schema_version(engine) == 1
    assert migrate(engine, MIGRATIONS) == len(MIGRATIONS) and Store(db_url).schema_version == len(MIGRATIONS)


def test_run_heartbeats_are_judged_by_the_database_clock(db_url, monkeypatch):
    """Each worker wrote its run's heartbeat with its own clock and judged the others' by its own:
    a worker whose clock ran a few minutes ahead took every live worker for dead and failed their
    trials as stale, over and over."""
    import autocompress.store.repository as repository

    def clock(offset: timedelta):
        return lambda: datetime.now(timezone.utc) + offset

    store = Store(db_url)
    monkeypatch.setattr(repository, "utcnow", clock(timedelta(minutes=-10)))  # a worker whose clock is behind
    run = _run(store)
    store.beat_run(run)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE ac_search_runs SET hostname = 'another-machine', pid = 1"))
    for offset in (timedelta(0), timedelta(minutes=10)):  # judged by a worker on time, and by one ahead
        monkeypatch.setattr(repository, "utcnow", clock(offset))
        assert [r.id for r in store.live_runs("s", silent_after_s=60)] == [run]
        assert store.reap_dead_runs("s", silent_after_s=60) == []
    assert store.runs("s")[0].status == "running"


def test_a_restarted_trial_row_forgets_the_earlier_results(db_url):
    """A row begun again (a study deleted in the dashboard and searched again under its name
    numbers its trials from 0) kept the earlier trial's objectives, metrics and curve: a new
    attempt that then failed showed the old figures."""
    store = Store(db_url)
    run = _run(store)
    store.begin_trial(run_id=run, study_name="s", trial_number=0, optuna_trial_id=1, device_info={})
    store.finish_trial(study_name="s", trial_number=0, state="COMPLETE", objectives=Objectives(0.9, 12.0, 300.0),
                       feasible=True, metrics=[M("quality", 0.9, "score", "measured", "cpu")],
                       finetune_curve=[(0, 1.0), (5, 0.5)])
    store.begin_trial(run_id=run, study_name="s", trial_number=0, optuna_trial_id=2, device_info={})
    row = store.trial("s", 0)
    assert (row.state, row.quality, row.latency_ms, row.memory_mb, row.feasible) == ("RUNNING", None, None, None, None)
    assert row.metrics == [] and row.finetune_curve is None and row.optuna_trial_id == 2
    store.finish_trial(study_name="s", trial_number=0, state="FAIL", failure_reason="stale")
    row = store.trial("s", 0)
    assert (row.state, row.quality, row.metrics, row.failure_reason) == ("FAIL", None, [], "stale")


def test_a_write_to_a_locked_sqlite_file_says_so_in_one_line(tmp_path, monkeypatch):
    """A store write that timed out on a locked file said "(sqlite3.OperationalError) database is
    locked", without the hint the other database errors give."""
    import sqlite3

    import autocompress.store.engine as engine_mod

    monkeypatch.setattr(engine_mod, "BUSY_TIMEOUT_S", 1)
    store = Store(f"sqlite:///{tmp_path}/s.db")
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as locked:
            _run(store)
    finally:
        holder.close()
    message = str(locked.value)
    assert "database is locked" in message and "several workers need PostgreSQL" in message
    assert "OperationalError" not in message and "\n" not in message


def test_a_read_only_sqlite_folder_is_named(tmp_path):
    """A database in a read-only folder (a read-only mount, a copy from another user) failed with
    SQLite's "unable to open database file", though the file is there and readable."""
    import os
    import shutil

    folder = tmp_path / "db"
    Store(f"sqlite:///{folder}/s.db").close()
    for leftover in ("s.db-wal", "s.db-shm"):
        (folder / leftover).unlink(missing_ok=True)
    if os.geteuid() == 0:  # root writes anywhere but on a read-only mount
        if shutil.which("mount") is None or subprocess.run(
            ["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True
        ).returncode != 0:
            pytest.skip("root cannot make a read-only bind mount here")
        undo = ["umount", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        with pytest.raises(StoreError) as ro:
            Store(f"sqlite:///{folder}/s.db")
    finally:
        subprocess.run(undo, check=True)
    message = str(ro.value)
    assert f"its folder {folder} is read-only" in message and "hint:" in message and "\n" not in message


def test_a_url_for_psycopg2_is_told_to_name_psycopg_3():
    """The hint for a missing psycopg2 was to install our postgres extra, which brings psycopg 3:
    the same URL failed again after it."""
    pytest.importorskip("sqlalchemy")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("psycopg2 is installed")
    with pytest.raises(StoreError, match=r"No module named 'psycopg2'; hint: write the URL as postgresql\+psycopg://"):
        Store("postgresql+psycopg2://worker@db.example/study")


def test_a_run_taken_for_dead_that_beats_again_is_running_again(db_url):
    """A worker whose beats stopped for a while (a suspended machine, a lost connection) was marked
    killed and stayed so while it searched on: every other worker then failed each trial it began
    as stale, and none of its work counted."""
    store = Store(db_url)
    run = _run(store)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE ac_search_runs SET hostname = 'another-machine', pid = 1, heartbeat_at = :t"),
                  {"t": datetime.now(timezone.utc) - timedelta(minutes=5)})
    assert store.reap_dead_runs("s", silent_after_s=60) == [run]
    store.beat_run(run)
    (row,) = store.runs("s")
    assert (row.status, row.finished_at) == ("running", None)
    assert [r.id for r in store.live_runs("s", silent_after_s=60)] == [run]
    store.finish_run(run, "finished")
    store.beat_run(run)  # a beat never revives a run that ended
    assert store.runs("s")[0].status == "finished"


@dataclass
class NotedMetric(M):
    note: str = ""


def test_a_metric_s_note_is_stored_with_it(db_url):
    """A figure's note (e.g. a latency timed in fp32, without the plan's quantization) was dropped."""
    store = Store(db_url)
    run = _run(store)
    store.begin_trial(run_id=run, study_name="s", trial_number=0, optuna_trial_id=1, device_info={})
    fp32 = "torch fp32 run of the student (its quantization does not count)"
    store.finish_trial(study_name="s", trial_number=0, state="COMPLETE", metrics=[
        NotedMetric("latency_ms", 80.0, "ms", "measured", "cpu", fp32),
        NotedMetric("quality", 0.9, "score", "measured", "cpu", ""),
        M("memory_bytes", 1e6, "bytes", "projected", "cpu"),  # no note attribute at all
    ])
    notes = {m.name: m.note for m in store.trial("s", 0).metrics}
    assert notes == {"latency_ms": fp32, "quality": None, "memory_bytes": None}


def test_a_version_2_database_gains_metric_notes_and_keeps_its_rows(db_url):
    """A store written before metric notes: its trials and metrics stay, each metric without a note."""
    engine = create_store_engine(db_url)
    assert migrate(engine, MIGRATIONS[:2]) == 2
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as c:
        run = c.execute(sa.text(
            "INSERT INTO ac_search_runs (study_name, target, space_name, space_sha256, voice, settings, device_info, "
            "hostname, pid, status, started_at, heartbeat_at) VALUES ('s', 'cpu', 'demo', 'ab', 'demo', '{}', '{}', "
            "'h', 1, 'finished', :t, :t) RETURNING id"), {"t": t}).scalar_one()
        trial = c.execute(sa.text(
            "INSERT INTO ac_trials (run_id, study_name, trial_number, optuna_trial_id, state, quality, device_info, "
            "finetune_steps, started_at) VALUES (:r, 's', 0, 5, 'COMPLETE', 0.8, '{}', 3, :t) RETURNING id"),
            {"r": run, "t": t}).scalar_one()
        c.execute(sa.text(
            "INSERT INTO ac_trial_metrics (trial_id, name, value, unit, kind, device) "
            "VALUES (:i, 'latency_ms', 42.0, 'ms', 'measured', 'cpu')"), {"i": trial})
    engine.dispose()
    store = Store(db_url)
    assert store.schema_version == 3 == len(MIGRATIONS)
    (row,) = store.trials("s")
    assert (row.quality, row.finetune_steps, row.state) == (0.8, 3, "COMPLETE")
    assert [(m.name, m.value, m.kind, m.device, m.note) for m in row.metrics] == [
        ("latency_ms", 42.0, "measured", "cpu", None)
    ]
    store.begin_trial(run_id=run, study_name="s", trial_number=1, optuna_trial_id=6, device_info={})
    store.finish_trial(study_name="s", trial_number=1, state="COMPLETE",
                       metrics=[NotedMetric("rtf", 0.5, "x", "projected", "rtx3060", "roofline estimate")])
    assert [m.note for m in store.trial("s", 1).metrics] == ["roofline estimate"]


def test_a_database_server_that_is_not_running_gets_a_hint():
    """The message ended at the driver's "Connection refused", saying nothing of what to do."""
    pytest.importorskip("psycopg")
    from autocompress.store.engine import create_store_engine

    with pytest.raises(StoreError) as e:
        create_store_engine("postgresql+psycopg://me:secret@127.0.0.1:9/db")  # port 9: nothing listens
    message = str(e.value)
    assert "Connection refused" in message and "is the database server running?" in message
    assert "secret" not in message and "\n" not in message


def test_two_workers_recording_one_trial_s_end_at_once_both_succeed(db_url):
    """Two workers mirroring a killed worker's finished trial from Optuna at once: the one that
    read the row before the other wrote its metrics wrote the same metric names again and failed
    with a unique-constraint error, which ended its search."""
    import threading

    first, second = Store(db_url), Store(db_url)
    run = _run(first)
    first.begin_trial(run_id=run, study_name="s", trial_number=0, optuna_trial_id=1, device_info={})
    done = dict(state="COMPLETE", objectives=Objectives(0.9, 12.0, 300.0), feasible=True)
    errors = []

    def second_worker() -> None:
        try:
            second.finish_trial(study_name="s", trial_number=0, metrics=[M("quality", 0.8, "score", "measured", "b")],
                                **done)
        except StoreError as e:
            errors.append(e)

    read = first._trial_row

    def read_then_let_the_other_write(*args, **kwargs):
        row = read(*args, **kwargs)
        other = threading.Thread(target=second_worker)
        other.start()
        other.join(1.0)  # where the first worker holds the row's lock, the second waits for its commit
        read_then_let_the_other_write.other = other
        return row

    first._trial_row = read_then_let_the_other_write
    first.finish_trial(study_name="s", trial_number=0, metrics=[M("quality", 0.9, "score", "measured", "a")], **done)
    read_then_let_the_other_write.other.join(30)
    assert errors == []
    (metric,) = first.trial("s", 0).metrics
    assert (metric.name, metric.value, metric.device) in {("quality", 0.9, "a"), ("quality", 0.8, "b")}


def test_a_database_whose_failed_migration_kept_its_column_is_repaired(db_url):
    """An earlier autocompress could keep a failed SQLite migration step's column without recording
    its version; every later open failed with "duplicate column name: heartbeat_at" for ever."""
    engine = create_store_engine(db_url)
    assert migrate(engine, MIGRATIONS[:1]) == 1
    with engine.begin() as c:
        MIGRATIONS[1].apply(c)  # the column of version 2, its version unrecorded
    engine.dispose()
    store = Store(db_url)
    assert store.schema_version == len(MIGRATIONS) == schema_version(store.engine)
    run = _run(store)
    store.beat_run(run)
    assert store.runs("s")[0].heartbeat_at is not None


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://worker:p@ss@db.example/study",
    "postgresql+psycopg://worker:p@ss@/study?host=/run/postgresql",
    "postgresql+psycopg://worker:p@ss@[::1]:5432/study",
])
def test_a_bare_at_sign_in_a_password_is_named_and_never_shown(url):
    """SQLAlchemy splits "user:p@ss@host" at the first "@": the rest of the password became the
    host name, shown in every message ("worker:***@ss@db.example"), and the connection failed with
    "is the database server running?"."""
    with pytest.raises(StoreError, match="percent-encode the password's special characters: '@' as %40") as bad:
        Store(url)
    assert "ss@" not in str(bad.value) and "\n" not in str(bad.value)


def test_a_percent_encoded_password_is_read_back_exactly():
    from autocompress.store import display_url, parse_url

    url = "postgresql+psycopg://worker:p%40s%2Fs%25w%3Ard@db.example:5433/study"
    parsed = parse_url(url)
    assert (parsed.username, parsed.password, parsed.host, parsed.port) == ("worker", "p@s/s%w:rd", "db.example", 5433)
    assert display_url(url) == "postgresql+psycopg://worker:***@db.example:5433/study"
    assert parse_url("postgresql+psycopg://me@corp:pw@db.example/study").username == "me@corp"  # "@" in a user name


@pytest.mark.parametrize("url", ["postgresql+psycopg://worker:p{x}@db.example/study", "sqlite:///TMP/{{SCHEMA_VERSION}}.db"])
def test_braces_optuna_would_read_as_a_template_are_refused(url, tmp_path):
    """Optuna fills its URL in with str.format: a password with braces failed in Optuna with
    "'x'", and a SQLite path with doubled braces put Optuna's tables in another file than ours."""
    with pytest.raises(StoreError, match="Optuna reads as a template; hint: write them as %7B and %7D"):
        Store(url.replace("TMP", str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_a_lock_whose_connection_the_server_dropped_ends_without_error(postgres_url, fresh_postgres_url):
    """A PostgreSQL restart while a worker held the migration or study-creation lock: the work it
    guarded was done, but releasing the lock raised SQLAlchemy's multi-line "terminating connection
    due to administrator command"."""
    from autocompress.store import exclusive

    store = Store(fresh_postgres_url)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with exclusive(store.engine, "test:restart"):
            with admin.connect() as c:  # every connection of the test's database, as a restart would
                c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                          {"d": store.engine.url.database})
    finally:
        admin.dispose()
    with exclusive(store.engine, "test:restart"):  # the lock is free, and the store works on
        assert store.runs("s") == []


def test_a_password_after_a_user_name_with_an_at_sign_is_masked():
    """A user name holding an "@" (Azure's "me@server", which SQLAlchemy accepts) left the password
    in the clear in messages about a URL that does not open and in `schedule list`."""
    from autocompress.store import mask_password

    url = "postgres+psycopg://me@corp:s3cret@db.example/study"  # "postgres": a scheme SQLAlchemy does not know
    assert mask_password(f"search --storage {url} --trials 3") == (
        "search --storage postgres+psycopg://me@corp:***@db.example/study --trials 3"
    )
    with pytest.raises(StoreError, match="names no database SQLAlchemy knows") as bad:
        Store(url)
    assert "s3cret" not in str(bad.value)
    assert mask_password("postgresql+psycopg://u:p@ss@h/db and sqlite:///db/x.db") == (
        "postgresql+psycopg://u:***@h/db and sqlite:///db/x.db"
    )
