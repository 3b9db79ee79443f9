"""Open a database URL for our tables and for Optuna's, with the same settings for both.

Any SQLAlchemy URL works. SQLite files get their parent folder created, write-ahead logging
(readers never block the writer; the mode is stored in the file, so Optuna's connections use it
too), a busy timeout instead of instant ``database is locked`` errors, and enforced foreign keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from autocompress.exceptions import ConfigError, StoreError
from autocompress.store.urls import DEFAULT_STORAGE, mask_password

BUSY_TIMEOUT_S = 60  # how long a writer waits for a lock before failing


_ENCODE_HINT = "; hint: percent-encode the password's special characters: '@' as %40, '/' as %2F, '%' as %25"


def _unencoded_at(url: str) -> bool:
    """Whether the part of ``url`` before its query holds a password with a bare ``@``."""
    authority = url.partition("?")[0].partition("://")[2]
    return authority.count("@") > 1 and ":" in authority.rpartition("@")[0]


def parse_url(url: str) -> URL:
    """Parse a SQLAlchemy URL, failing with one line instead of SQLAlchemy's message.

    Raises:
        StoreError: when ``url`` is not a database URL.
    """
    if "{" in url or "}" in url:  # Optuna fills its URL in as a str.format template
        raise StoreError(
            f"--storage {mask_password(url)!r} holds '{{' or '}}', which Optuna reads as a template; "
            "hint: write them as %7B and %7D"
        )
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise StoreError(
            f"--storage {mask_password(url)!r} is not a database URL; expected e.g. {DEFAULT_STORAGE} "
            f"or postgresql+psycopg://user@host/db{_ENCODE_HINT if _unencoded_at(url) else ''}"
        ) from None  # SQLAlchemy's message quotes the URL, password and all
    if "@" in (parsed.host or ""):  # "user:p@ss@host": SQLAlchemy splits at the first "@"
        raise StoreError(
            f"--storage {mask_password(url)!r} has an '@' in its password that is not percent-encoded"
            f"{_ENCODE_HINT}"
        )
    try:
        parsed.get_dialect()  # the scheme names a database SQLAlchemy knows (its driver loads later)
    except sa.exc.NoSuchModuleError:
        raise StoreError(
            f"--storage {mask_password(url)!r} names no database SQLAlchemy knows ({parsed.drivername!r}); "
            f"expected e.g. {DEFAULT_STORAGE} or postgresql+psycopg://user@host/db"
        ) from None
    return parsed


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def require_database(url: str) -> None:
    """Raise ``ConfigError`` (a bad ``--storage``) when ``url`` is a SQLite file that does not exist: a command that only
    reads a study must not leave an empty database behind a mistyped path."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise ConfigError(f"no database at {path}; hint: give the --storage the search used")


def display_url(url: str) -> str:
    """Return the URL with any password masked, for logs and messages."""
    return parse_url(url).render_as_string(hide_password=True)


def engine_kwargs(url: str) -> dict[str, Any]:
    """Return the ``create_engine`` keyword arguments we use for ``url`` (also given to Optuna)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    # Switching a new file to WAL takes an exclusive lock, and SQLite answers "database is
    # locked" at once, without its busy wait, when that could deadlock with another process
    # doing the same (workers opening one new database together): so try again for a while.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def prepare_storage(url: str) -> None:
    """Create a SQLite file's folder; fail early with one line if it cannot exist.

    Raises:
        StoreError: when the folder cannot be created.
    """
    path = sqlite_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the database folder {path.parent}: {e.strerror}") from e


@contextlib.contextmanager
def exclusive(engine: Engine, key: str) -> Iterator[None]:
    """Hold a lock named ``key`` on the database across processes and machines.

    PostgreSQL: a session advisory lock. SQLite: an exclusive ``flock`` on ``<file>.lock``
    beside the database (the processes share its file system). Other databases and in-memory
    SQLite: no lock (one process).
    """
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": number})
            conn.commit()
            try:
                yield
            finally:
                try:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": number})
                    conn.commit()
                except sa.exc.SQLAlchemyError:
                    # The connection broke (a server restart): closing it for good frees the lock,
                    # which the server holds for the session, and the work it guarded is done.
                    conn.invalidate()
        return
    database = engine.url.database if backend == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(Path(database).with_name(Path(database).name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def create_store_engine(url: str) -> Engine:
    """Create an engine for ``url`` with our SQLite settings; check that it connects.

    Raises:
        StoreError: when the URL is invalid, its driver is missing, or the database refuses us.
    """
    prepare_storage(url)
    parsed = parse_url(url)
    try:
        engine = sa.create_engine(parsed, **engine_kwargs(url))
    except (sa.exc.ArgumentError, ImportError, sa.exc.NoSuchModuleError) as e:
        raise StoreError(f"cannot open --storage {display_url(url)}: {e}{driver_hint(e, url)}") from e
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as e:
        engine.dispose()
        path = sqlite_path(url)
        reason = (path is not None and _sqlite_unwritable(path)) or database_reason(e)
        raise StoreError(f"cannot connect to --storage {display_url(url)}: {reason}") from e
    return engine


def driver_hint(e: BaseException, url: str = "") -> str:
    """How to get a missing PostgreSQL driver (named by the error or by the URL ``url``): psycopg (3),
    the one our ``postgres`` extra installs."""
    text = f"{e} {url}"
    if "psycopg2" in text:  # the extra would not bring it: the URL must name psycopg 3
        return "; hint: write the URL as postgresql+psycopg://... and pip install 'autocompress[postgres]'"
    if "psycopg" in text:
        return "; hint: pip install 'autocompress[postgres]' (psycopg)"
    return ""


def _sqlite_unwritable(path: Path) -> str | None:
    """Why SQLite cannot open ``path`` when it is the file or its folder being read-only (SQLite
    writes the file, and its -wal and -shm files beside it, even to read); None otherwise."""
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK):
        what = f"its folder {folder}"
    elif path.is_file() and not os.access(path, os.W_OK):
        what = f"the file {path}"
    else:
        return None
    return (
        f"{what} is read-only, and SQLite writes the database and its -wal and -shm files beside it even to "
        "read; hint: make it writable, or copy the database to a writable folder and give that --storage"
    )


def database_reason(e: BaseException) -> str:
    """The database's own words for a failed statement (the driver's error under Optuna's and
    SQLAlchemy's wrappers), in one line, with a hint for a locked SQLite file."""
    while e.__cause__ is not None and not isinstance(e, sa.exc.DBAPIError):
        e = e.__cause__
    inner = getattr(e, "orig", None) or e
    text = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
    if "database is locked" in text:
        text += "; hint: another process holds the SQLite file (several workers need PostgreSQL)"
    elif "readonly database" in text or "unable to open database file" in text:
        text += "; hint: is the SQLite file or its folder read-only? SQLite writes both even to read"
    elif "Connection refused" in text or "could not translate host name" in text or "timeout expired" in text:
        text += "; hint: is the database server running? check the host and port in --storage"
    return text


__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_STORAGE",
    "create_store_engine",
    "database_reason",
    "display_url",
    "engine_kwargs",
    "exclusive",
    "mask_password",
    "parse_url",
    "prepare_storage",
    "require_database",
    "sqlite_path",
]
