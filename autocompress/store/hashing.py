"""Content hashes of exported folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20  # read files 1 MiB at a time


def hash_folder(folder: Path) -> tuple[str, int]:
    """Return the SHA-256 of a folder's files and their total size in bytes.

    The hash covers every regular file's path relative to ``folder`` (sorted, ``/``-separated)
    and its bytes, so renaming, adding, removing or changing any file changes it; the folder's
    own name and location do not.
    """
    digest = hashlib.sha256()
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix().encode()
        digest.update(len(rel).to_bytes(4, "big") + rel)
        size = path.stat().st_size
        digest.update(size.to_bytes(8, "big"))
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        total += size
    return digest.hexdigest(), total


__all__ = ["hash_folder"]
