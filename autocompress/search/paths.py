"""Where a search keeps its files: the artifact store, student checkpoints, the teacher cache."""

from __future__ import annotations

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


__all__ = ["artifacts_dir", "student_dir", "students_dir", "teacher_cache_path"]
