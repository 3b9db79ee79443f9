"""Where a search keeps its files: the artifact store, student checkpoints, the teacher cache."""

from __future__ import annotations

import os
from pathlib import Path

from autocompress.store import sqlite_path


def artifacts_dir(storage: str, override: Path | None = None) -> Path:
    """The artifact folder of a storage: ``<db folder>/artifacts`` for SQLite, else ``db/artifacts``."""
    if override is not None:
        return override
    db = sqlite_path(storage)
    return (db.parent if db is not None else Path("db")) / "artifacts"


def students_dir(artifacts: Path, study: str) -> Path:
    """Fine-tuned student checkpoints of a study, one folder per trial (Pareto trials are kept)."""
    return artifacts / "students" / study


def student_dir(artifacts: Path, study: str, number: int) -> Path:
    return students_dir(artifacts, study) / f"trial-{number:04d}"


def teacher_cache_path(artifacts: Path, study: str) -> Path:
    """The teacher's outputs on the evaluation set, computed once per study."""
    return artifacts / "teacher-cache" / f"{study}.pt"


def check_writable_dir(path: Path, flag: str) -> None:
    """Raise ``ConfigError`` unless ``path`` is, or can be made, a folder this process writes into."""
    from autocompress.exceptions import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, so the folder cannot be made")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} is not writable")


def check_export_dir(path: Path, flag: str = "--out", study: str | None = None, target: str | None = None) -> None:
    """Raise ``ConfigError`` unless an export (of ``study`` for ``target``, when given) may
    replace ``path``: new, empty, or an earlier export of the same study and target.

    An export replaces its folder whole, so a folder holding anything else is refused rather
    than emptied.
    """
    import json

    from autocompress.exceptions import ConfigError

    path = Path(path).absolute()
    check_writable_dir(path, flag)
    if not (path.is_dir() and any(path.iterdir())):
        return
    index = path / "pareto.json"
    if not index.is_file():
        raise ConfigError(
            f"{flag} {path}: the folder holds files that are not an autocompress export, and an export replaces "
            "its folder whole; choose a new or empty folder"
        )
    try:
        was = json.loads(index.read_text())
    except (OSError, ValueError):
        was = {}
    was = was if isinstance(was, dict) else {}
    for key, now in (("study", study), ("target", target)):
        if now is not None and was.get(key) not in (None, now):
            raise ConfigError(
                f"{flag} {path}: the folder holds the export of study {was.get('study')!r} for {was.get('target')!r}, "
                "and an export replaces its folder whole; choose another folder"
            )


__all__ = [
    "artifacts_dir", "check_export_dir", "check_writable_dir", "student_dir", "students_dir", "teacher_cache_path",
]
