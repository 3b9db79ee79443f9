"""Fixtures shared by the schedule tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite database in the test's own folder."""
    return f"sqlite:///{tmp_path / 's.db'}"
