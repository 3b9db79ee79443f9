"""Tables of the scheduler: schedules, their run history and the run lock.

They live in the same database as the search (any SQLAlchemy URL), under their own
metadata so that the scheduler can create them without knowing the search store's schema.
Columns added since a table was first created are added to it when it is opened.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from autocompress.exceptions import ConfigError, StoreError
from autocompress.store.engine import create_store_engine, parse_url, sqlite_path


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class ScheduleBase(DeclarativeBase):
    pass


class ScheduleRow(ScheduleBase):
    """One named schedule: a cron expression and the ``run_search`` arguments it runs."""

    __tablename__ = "ac_schedules"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    cron: Mapped[str] = mapped_column(String(128))
    args_json: Mapped[str] = mapped_column(Text)  # JSON list of run_search arguments
    timeout_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    workdir: Mapped[str | None] = mapped_column(Text, nullable=True)  # where the search runs
    # export folders kept (0: all); NULL in a row stored before the setting existed: the default
    keep_exports: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ScheduleRunRow(ScheduleBase):
    """One execution of a schedule, written when it starts and completed when it ends."""

    __tablename__ = "ac_schedule_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(128), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed | skipped | interrupted
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trials_added: Mapped[int | None] = mapped_column(Integer, nullable=True)  # finished, in any state
    trials_failed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trials_pruned: Mapped[int | None] = mapped_column(Integer, nullable=True)
    front_changed: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 0/1
    exports: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of paths
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ScheduleLockRow(ScheduleBase):
    """A lease on a schedule: whoever holds an unexpired row may run it."""

    __tablename__ = "ac_schedule_locks"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """Return a cached engine for ``url`` with the scheduler's tables created.

    The engine is the search store's (a SQLite file's folder is created, the URL checked), so
    a daemon, a CLI call and the searches share the database with the same settings. A relative
    SQLite path is taken from the current directory when the engine is first made.

    Raises:
        ConfigError: when ``url`` is not a database URL.
        StoreError: when the database cannot be opened.
    """
    try:
        path = sqlite_path(url)
    except StoreError as e:  # the flag is wrong: a usage error
        raise ConfigError(str(e)) from e
    if path is not None and not path.is_absolute():
        url = parse_url(url).set(database=str(Path.cwd() / path)).render_as_string(hide_password=False)
    if url in _ENGINES:
        return _ENGINES[url]
    engine = create_store_engine(url)
    ScheduleBase.metadata.create_all(engine)
    _add_missing_columns(engine)
    _ENGINES[url] = engine
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a table created by an older version lacks."""
    inspector = sa.inspect(engine)
    for table in ScheduleBase.metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
