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
    assert store.schema_version == 2
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
