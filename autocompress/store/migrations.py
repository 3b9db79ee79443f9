"""Forward migrations of the ``ac_`` tables, applied in order on every open.

Each migration brings the schema from version ``n - 1`` to ``n`` and is recorded in
``ac_schema_migrations``. Migration 1 spells out the tables as they were at version 1 (a
snapshot, not the ORM classes), so that later migrations can alter them safely. To change the
schema: edit :mod:`autocompress.store.models`, then append a migration that turns the previous
schema into the new one; ``tests/store`` checks that migrating an empty database gives exactly
the ORM's tables.

A database whose schema is newer than this code knows is refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autocompress.exceptions import StoreError
from autocompress.store.engine import database_reason
from autocompress.store.models import METRIC_KINDS, RUN_STATUSES, TRIAL_STATES, utcnow

MIGRATIONS_TABLE = "ac_schema_migrations"


@dataclass(frozen=True)
class Migration:
    """One forward step of the schema."""

    version: int
    name: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    """Create the search-run, trial, metric and bundle tables (schema version 1)."""
    md = sa.MetaData()
    tz = sa.DateTime(timezone=True)
    sa.Table(
        "ac_search_runs", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_name", sa.String(512), nullable=False, index=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("space_name", sa.String(200), nullable=False),
        sa.Column("space_sha256", sa.String(64), nullable=False),
        sa.Column("voice", sa.Text, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("device_info", sa.JSON, nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", tz, nullable=False),
        sa.Column("finished_at", tz, nullable=True),
        sa.CheckConstraint(f"status IN {RUN_STATUSES}", name="ck_ac_search_runs_status"),
    )
    sa.Table(
        "ac_trials", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("ac_search_runs.id"), nullable=False, index=True),
        sa.Column("study_name", sa.String(512), nullable=False, index=True),
        sa.Column("trial_number", sa.Integer, nullable=False),
        sa.Column("optuna_trial_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("baseline", sa.String(64), nullable=True),
        sa.Column("plan", sa.JSON, nullable=True),
        sa.Column("plan_summary", sa.Text, nullable=True),
        sa.Column("quality", sa.Float, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("memory_mb", sa.Float, nullable=True),
        sa.Column("feasible", sa.Boolean, nullable=True),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.Column("device_info", sa.JSON, nullable=False),
        sa.Column("finetune_steps", sa.Integer, nullable=False),
        sa.Column("finetune_curve", sa.JSON, nullable=True),
        sa.Column("started_at", tz, nullable=False),
        sa.Column("finished_at", tz, nullable=True),
        sa.UniqueConstraint("study_name", "trial_number", name="uq_ac_trials_study_number"),
        sa.CheckConstraint(f"state IN {TRIAL_STATES}", name="ck_ac_trials_state"),
    )
    sa.Table(
        "ac_trial_metrics", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "trial_id", sa.Integer, sa.ForeignKey("ac_trials.id", ondelete="CASCADE"),
            nullable=False, index=True,
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("device", sa.String(128), nullable=False),
        sa.UniqueConstraint("trial_id", "name", name="uq_ac_trial_metrics_trial_name"),
        sa.CheckConstraint(f"kind IN {METRIC_KINDS}", name="ck_ac_trial_metrics_kind"),
    )
    sa.Table(
        "ac_bundles", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("ac_search_runs.id"), nullable=True, index=True),
        sa.Column("study_name", sa.String(512), nullable=False, index=True),
        sa.Column("trial_number", sa.Integer, nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", tz, nullable=False),
    )
    md.create_all(conn)


def _add_column(conn: Connection, table: str, column: str, kind: sa.types.TypeEngine) -> None:
    """Add a nullable column unless the table has it already (an earlier autocompress, whose SQLite
    migration steps were not one transaction, could keep a failed step's column unrecorded)."""
    if column in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
        return
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind.compile(dialect=conn.dialect)}")


def _v2_run_heartbeat(conn: Connection) -> None:
    """Add ``ac_search_runs.heartbeat_at``, the time a run last said it was alive."""
    _add_column(conn, "ac_search_runs", "heartbeat_at", sa.DateTime(timezone=True))


def _v3_metric_notes(conn: Connection) -> None:
    """Add ``ac_trial_metrics.note``, what a figure is of or assumes (NULL for older rows)."""
    _add_column(conn, "ac_trial_metrics", "note", sa.Text())


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial tables", _v1_initial),
    Migration(2, "run heartbeat", _v2_run_heartbeat),
    Migration(3, "metric notes", _v3_metric_notes),
)


def _migrations_table() -> sa.Table:
    return sa.Table(
        MIGRATIONS_TABLE, sa.MetaData(),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )


def schema_version(engine: Engine) -> int:
    """Return the highest applied migration version; 0 for a database without our tables."""
    if not sa.inspect(engine).has_table(MIGRATIONS_TABLE):
        return 0
    table = _migrations_table()
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(table.c.version))).scalar() or 0)


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply every migration newer than the database's version; return the new version.

    Args:
        engine: the database.
        migrations: the ordered migrations (versions 1, 2, ... without gaps).

    Returns:
        The schema version after migrating.

    Raises:
        StoreError: when the database is newer than the code, or a migration fails.
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreError(f"migrations must be numbered 1..n without gaps, got {versions}")
    latest = versions[-1] if versions else 0
    table = _migrations_table()
    try:
        with engine.begin() as conn:
            table.create(conn, checkfirst=True)
        current = schema_version(engine)
        if current > latest:
            raise StoreError(
                f"database schema is version {current}, this autocompress knows up to {latest}; "
                "hint: upgrade autocompress or use another --storage"
            )
        for m in migrations:
            if m.version <= current:
                continue
            with engine.begin() as conn:  # one transaction per step (DDL is transactional in PG/SQLite)
                if conn.dialect.name == "sqlite":  # Python's sqlite3 opens no transaction before DDL by itself
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                m.apply(conn)
                conn.execute(table.insert().values(version=m.version, name=m.name, applied_at=utcnow()))
    except sa.exc.SQLAlchemyError as e:
        raise StoreError(
            f"cannot migrate the database schema at {engine.url.render_as_string(hide_password=True)}: "
            f"{database_reason(e)}"
        ) from e
    return latest


__all__ = ["MIGRATIONS", "Migration", "migrate", "schema_version"]
