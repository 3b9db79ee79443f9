"""sha256_file's memo: a file is read once per process while it is unchanged, and never trusted after a change."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from autocompress.runtime import files
from autocompress.runtime.files import sha256_file


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``files`` opens, in order."""
    seen: list[str] = []
    real_open = open

    def counting_open(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        seen.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(files, "open", counting_open, raising=False)
    monkeypatch.setattr(files, "_DIGESTS", {})
    return seen


def test_memo_reads_an_unchanged_file_once(tmp_path: Path, reads: list[str]) -> None:
    f = tmp_path / "model.pth"
    f.write_bytes(b"weights" * 1000)
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert sha256_file(f, memo=True) == want
    assert sha256_file(f, memo=True) == want
    assert len(reads) == 1
    assert sha256_file(f) == want  # without memo: always read
    assert len(reads) == 2


def test_memo_rehashes_a_changed_file(tmp_path: Path, reads: list[str]) -> None:
    f = tmp_path / "model.pth"
    f.write_bytes(b"a" * 100)
    before = sha256_file(f, memo=True)
    st = os.stat(f)
    time.sleep(0.05)  # past the file system's clock tick (a few ms), which stamps the change time
    f.write_bytes(b"b" * 100)  # same size ...
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same modification time
    after = sha256_file(f, memo=True)
    assert after == hashlib.sha256(b"b" * 100).hexdigest() != before  # the change time still moved
    assert len(reads) == 2


def test_cache_fingerprint_follows_file_contents(tmp_path: Path) -> None:
    from autocompress.search.cache import fingerprint

    gpt, sovits = tmp_path / "a.ckpt", tmp_path / "b.pth"
    gpt.write_bytes(b"gpt")
    sovits.write_bytes(b"sovits")
    key = fingerprint([gpt, sovits], ["x"], {"seg": 32})
    assert fingerprint([gpt, sovits], ["x"], {"seg": 32}) == key
    assert fingerprint([sovits, gpt], ["x"], {"seg": 32}) != key
    sovits.write_bytes(b"sovits, retrained")
    assert fingerprint([gpt, sovits], ["x"], {"seg": 32}) != key
