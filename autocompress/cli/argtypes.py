"""Argument types shared by the command lines: each turns one flag's text into a checked value
or raises ``argparse.ArgumentTypeError``, which argparse prints as a one-line error."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

MAX_SEED = 2**64 - 1  # the largest seed both torch's and numpy's generators take


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number of 0 or more, got {text}")
    return value


def seed(text: str) -> int:
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEED}, got {value}")
    return value


def user_path(text: str) -> Path:
    """A path whose leading ``~`` or ``~user`` names that home folder, as a shell would expand it."""
    return Path(text).expanduser()


def user_text(text: str) -> str:
    """A name or a path, with a path's leading ``~`` expanded as :func:`user_path` does."""
    return os.path.expanduser(text)


def check_output_file(path: str | Path, flag: str) -> None:
    """Raise ``ConfigError`` unless a file may be written at ``path``: not a folder, and the
    nearest folder above it that exists (the missing ones are made) is a folder this process
    writes into. Checked before a command does its work, which a late failure would lose."""
    from autocompress.exceptions import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give the path of the file to write")
    existing = path.absolute().parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a folder; choose another path")
    if path.exists() and not path.is_file():
        return  # a device or a pipe (``/dev/null``) is written into, not replaced
    if not os.access(existing, os.W_OK | os.X_OK) or not _can_create_in(existing):
        raise ConfigError(f"{flag} {path}: the folder {existing} is not writable; choose another path")


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (tried for real: ``os.access`` says yes to root
    on a read-only file system or under ``/proc``)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
