"""Small file helpers shared by the bundle writer and the runner: hashing and atomic writes.

An atomic write goes to a temporary file in the destination's own folder and is then
renamed over the destination, so a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

_CHUNK_BYTES = 1 << 20  # read 1 MiB at a time when hashing
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}  # sha256_file's memo, by file identity and stat
_DIGESTS_KEPT = 64


def sha256_file(path: str | Path, memo: bool = False) -> str:
    """Return the hex SHA-256 of a file's bytes.

    With ``memo``, a file hashed before in this process with ``memo`` and unchanged since (same
    inode, size, modification and change times) is not read again: a search start hashes the
    same multi-hundred-MB checkpoints for the study's identity and for its teacher cache.
    Checks against tampering leave it off: two writes within one clock tick can leave the
    times as they were.
    """
    if memo:
        st = os.stat(path)
        key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if (known := _DIGESTS.get(key)) is not None:
            return known
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    if not memo:
        return digest.hexdigest()
    if len(_DIGESTS) >= _DIGESTS_KEPT:
        _DIGESTS.pop(next(iter(_DIGESTS)))
    _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the permissions a plain ``open`` would give it (mkstemp's are 0600). A path
    that names something other than a regular file (``/dev/null``, a pipe) is written into
    directly, as ``cp`` would: a rename would replace the device itself.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder, not a file")
        with open(path, "wb") as f:
            f.write(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write indented, key-sorted JSON atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def sibling_temp_dir(destination: str | Path) -> Path:
    """Create and return an empty folder beside ``destination`` (same file system, so a
    rename onto ``destination`` is atomic)."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    os.chmod(folder, 0o777 & ~_umask())  # what mkdir would give it (mkdtemp's is 0700)
    return folder


def publish_dir(built: str | Path, destination: str | Path) -> None:
    """Move a finished folder onto ``destination``, replacing any folder already there.

    ``built`` must sit beside ``destination`` (see :func:`sibling_temp_dir`). A reader sees
    either the old folder or the new one; the old one is removed after the swap.
    """
    built, destination = Path(built), Path(destination)
    old = None
    if destination.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old.", dir=destination.parent))
        os.rmdir(old)
        os.rename(destination, old)
    try:
        os.rename(built, destination)
    except BaseException:
        if old is not None:
            os.rename(old, destination)
        raise
    if old is not None:
        _remove_tree(old)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "publish_dir",
    "sha256_file",
    "sibling_temp_dir",
]
