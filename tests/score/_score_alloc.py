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
