"""Tables of the scheduler: schedules, their run history and the run lock.

They live in the same database as the search (any SQLAlchemy URL), under their own
metadata so that the scheduler can create them without knowing the search store's schema.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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


class ScheduleRunRow(ScheduleBase):
    """One execution of a schedule, written when it starts and completed when it ends."""

    __tablename__ = "ac_schedule_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(128), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed | skipped
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trials_added: Mapped[int | None] = mapped_column(Integer, nullable=True)
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

    SQLite gets WAL mode and a busy timeout so that a daemon and a CLI call can share it.
    """
    if url in _ENGINES:
        return _ENGINES[url]
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": 30} if is_sqlite else {})
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # noqa: ANN001
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    ScheduleBase.metadata.create_all(engine)
    _ENGINES[url] = engine
    return engine
