"""The latency harness: run a callable a fixed number of times and keep every sample."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from autocompress.exceptions import ConfigError


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one measured callable, in seconds.

    Attributes:
        samples_s: one entry per timed call, in call order (warm-up calls excluded).
        warmup: untimed calls made first.
    """

    samples_s: tuple[float, ...]
    warmup: int

    @property
    def repeats(self) -> int:
        return len(self.samples_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def min_s(self) -> float:
        return min(self.samples_s)

    def to_dict(self) -> dict[str, Any]:
        return {"samples_s": list(self.samples_s), "warmup": self.warmup}


def measure(
    fn: Callable[[], Any],
    warmup: int = 2,
    repeats: int = 5,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    setup: Callable[[], Any] | None = None,
) -> Timing:
    """Call ``fn`` exactly ``warmup + repeats`` times and time the last ``repeats`` calls.

    Args:
        fn: the work, without arguments.
        warmup: untimed calls first (caches, allocator, lazy init).
        repeats: timed calls (>= 1); the median is the reported figure.
        sync: called before reading the clock on both sides of each timed call (for CUDA, pass
            ``torch.cuda.synchronize``) and once after the warm-up.
        clock: the time source, seconds.
        setup: called, untimed, before every call of ``fn`` (warm-up calls included), e.g.
            to refill a cache the call consumes.

    Returns:
        The :class:`Timing` with all samples.
    """
    if warmup < 0 or repeats < 1:
        raise ConfigError(
            f"measure needs warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}"
        )
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    if sync is not None:
        sync()
    samples = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        if sync is not None:
            sync()
        t0 = clock()
        fn()
        if sync is not None:
            sync()
        samples.append(clock() - t0)
    return Timing(samples_s=tuple(samples), warmup=warmup)
