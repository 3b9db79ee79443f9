"""A workload for the fresh-subprocess memory test: imports numpy only, so the child starts fast."""

from __future__ import annotations

import numpy as np


def allocate(megabytes: int) -> None:
    """Hold ``megabytes`` of touched (resident) memory for a moment."""
    block = np.ones(megabytes * 2**20, dtype=np.uint8)
    if int(block.sum()) != megabytes * 2**20:
        raise RuntimeError("allocation was not filled")


def fail(message: str) -> None:
    """A workload that raises, for the error path."""
    raise ValueError(message)


def gpu_reading(pid_file: str, nvml: bool) -> dict:
    """Stands in for a GPU workload: what ``read_gpu_memory`` returns after one, and this process's id."""
    import os

    with open(pid_file, "w", encoding="ascii") as f:
        f.write(str(os.getpid()))
    return {
        "device": "cuda:0 (stand-in)",
        "nvml_bytes": 7e8 if nvml else None,
        "nvml_reason": "" if nvml else "NVML unavailable: no driver",
        "peak_allocated": 2e8,
        "reserved": 3e8,
    }
