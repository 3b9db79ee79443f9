"""The latency harness: run a callable a fixed number of times and keep every sample.

It also says whether the machine was shared while it timed: the CPU time that *other*
processes spent on this process's CPUs during the timed calls (Linux ``/proc/stat``), so that a
latency measured beside another search or a build is flagged instead of silently inflated.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from autocompress.exceptions import ConfigError


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one measured callable, in seconds.

    Attributes:
        samples_s: one entry per timed call, in call order (warm-up calls excluded).
        warmup: untimed calls made first.
        others_cores: mean number of this process's CPUs that other processes kept busy during
            the timed calls (None where the host does not say, e.g. not Linux, or the stretch
            was too short to tell).
        own_cores: mean number of CPUs this process itself used meanwhile (None with the above).
    """

    samples_s: tuple[float, ...]
    warmup: int
    others_cores: float | None = None
    own_cores: float | None = None

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
        return {"samples_s": list(self.samples_s), "warmup": self.warmup, "others_cores": self.others_cores,
                "own_cores": self.own_cores}

    def contention(self, threads: int, cpus: int | None = None) -> str:
        """A note when the timed work went short of CPU because of other processes; else "".

        Short means: others kept more than CONTENTION_SLACK cores busy while this process, asking
        for ``threads`` cores, got under STARVED_SHARE of them. ``cpus`` (for the note; default:
        this process's CPUs).
        """
        if self.others_cores is None or self.own_cores is None:
            return ""
        if self.others_cores <= CONTENTION_SLACK or self.own_cores >= STARVED_SHARE * threads:
            return ""
        cpus = len(_own_cpus()) if cpus is None else cpus
        return (f"{CONTENDED} other processes kept {self.others_cores:.1f} of {cpus} CPUs busy while it was "
                f"timed, and it got {self.own_cores:.1f} of the {threads} it runs on; the figure is inflated")


CONTENDED = "contended:"  # how a contention note begins (metric notes are searched for it)
CONTENTION_SLACK = 0.5  # cores of background activity that do not count as contention
STARVED_SHARE = 0.9  # a timed run that got less than this share of its threads' cores went short
MIN_LOAD_WINDOW_S = 0.25  # /proc/stat counts in ticks of 10 ms: shorter stretches cannot say


def contention_in(note: str) -> str:
    """The contention warning a metric's note carries ("" when none)."""
    return note[note.index(CONTENDED):] if CONTENDED in note else ""


def _own_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cpu_busy_s(cpus: list[int], stat: str | None = None) -> float | None:
    """Seconds the given CPUs spent on anything but idle and I/O wait since boot (``/proc/stat``;
    steal counts as busy: the hypervisor gave that time to someone else); None when unreadable."""
    try:
        text = stat if stat is not None else Path("/proc/stat").read_text()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    busy, seen = 0, 0
    for line in text.splitlines():
        name, *fields = line.split() or [""]
        if name in wanted:
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            busy += sum(ticks) - ticks[3] - ticks[4]
            seen += 1
    if seen != len(wanted):
        return None
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class _HostLoad:
    """Snapshots around a timed stretch: the cores others and this process kept busy on average
    (``(others, own)``; ``(None, None)`` for a stretch under MIN_LOAD_WINDOW_S or no /proc/stat)."""

    def __init__(self) -> None:
        self.cpus = _own_cpus()
        self.start = (time.perf_counter(), cpu_busy_s(self.cpus), _own_cpu_s())

    def cores(self) -> tuple[float | None, float | None]:
        wall0, busy0, own0 = self.start
        wall, busy = time.perf_counter() - wall0, cpu_busy_s(self.cpus)
        if busy0 is None or busy is None or wall < MIN_LOAD_WINDOW_S:
            return None, None
        own = (_own_cpu_s() - own0) / wall
        return max(0.0, (busy - busy0) / wall - own), own


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
    load = _HostLoad()
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
    others, own = load.cores()
    return Timing(samples_s=tuple(samples), warmup=warmup, others_cores=others, own_cores=own)
