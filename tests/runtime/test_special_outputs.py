"""Output paths that are not regular files: written into, never replaced; unwritable folders refused early."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from autocompress.cli.argtypes import check_output_file
from autocompress.exceptions import ConfigError
from autocompress.runtime.files import atomic_write_bytes


def test_a_pipe_is_written_into_and_stays_a_pipe(tmp_path):
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_bytes(fifo, b"RIFF-bytes")
    reader.join(timeout=10)
    assert got == [b"RIFF-bytes"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # a rename would have left a regular file here
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temporary file left beside it


def test_a_folder_is_refused_not_replaced(tmp_path):
    with pytest.raises(IsADirectoryError):
        atomic_write_bytes(tmp_path, b"x")


def test_an_existing_pipe_passes_the_early_output_check(tmp_path):
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    check_output_file(fifo, "--out")  # no error: it is written into


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_folder_no_file_can_be_made_in_is_refused_early_even_for_root():
    # os.access says yes to root here; only a real attempt shows that nothing can be created
    with pytest.raises(ConfigError, match="not writable"):
        check_output_file("/proc/report.html", "--out")
