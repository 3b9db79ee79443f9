"""The latency harness calls exactly as often as asked, keeps every sample (fake clock) and says
when other processes shared the CPUs while it timed."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time

import pytest

from autocompress.exceptions import ConfigError
from autocompress.score import Timing, measure
from autocompress.score.timing import CONTENDED, cpu_busy_s


def test_call_counts_are_exact():
    calls = []
    timing = measure(lambda: calls.append(1), warmup=2, repeats=5)
    assert len(calls) == 7
    assert timing.repeats == 5 and len(timing.samples_s) == 5 and timing.warmup == 2
    calls.clear()
    measure(lambda: calls.append(1), warmup=0, repeats=1)
    assert len(calls) == 1


def test_samples_come_from_the_clock_and_the_median_is_reported():
    ticks = itertools.count()
    log = []

    def clock() -> float:
        return float(next(ticks))

    durations = iter([3, 1, 2])  # clock advances by these inside each timed call

    def fn() -> None:
        log.append("fn")
        if len(log) > 1:  # the first call is the warm-up
            for _ in range(next(durations) - 1):
                next(ticks)

    timing = measure(fn, warmup=1, repeats=3, clock=clock)
    assert timing.samples_s == (3.0, 1.0, 2.0)
    assert timing.median_s == 2.0 and timing.min_s == 1.0 and timing.median_ms == 2000.0


def test_setup_and_sync_run_untimed_around_every_call():
    events = []
    measure(lambda: events.append("fn"), warmup=1, repeats=2, sync=lambda: events.append("sync"),
            setup=lambda: events.append("setup"))
    assert events.count("fn") == 3 and events.count("setup") == 3
    # one sync after the warm-up, then one before and one after each timed call
    assert events.count("sync") == 1 + 2 * 2
    assert events[:2] == ["setup", "fn"]


def test_bad_counts_are_config_errors():
    with pytest.raises(ConfigError):
        measure(lambda: None, warmup=-1)
    with pytest.raises(ConfigError):
        measure(lambda: None, repeats=0)


# ----------------------------------------------------------------- a shared machine is flagged

STAT = """cpu  900 0 300 5000 100 0 0 0 0 0
cpu0 100 0 50 1000 10 5 5 30 0 0
cpu1 200 10 20 900 0 0 0 0 0 0

intr 12345
"""


def test_busy_time_counts_all_but_idle_and_iowait_of_the_named_cpus():
    tick = os.sysconf("SC_CLK_TCK")
    assert cpu_busy_s([0], STAT) == pytest.approx((100 + 50 + 5 + 5 + 30) / tick)  # steal is busy
    assert cpu_busy_s([0, 1], STAT) == pytest.approx((190 + 230) / tick)
    assert cpu_busy_s([0, 7], STAT) is None  # a CPU /proc/stat does not list: cannot say


def test_contention_is_others_busy_while_the_timed_work_went_short():
    def timing(others: float, own: float) -> Timing:
        return Timing(samples_s=(1.0,), warmup=0, others_cores=others, own_cores=own)

    assert timing(0.4, 1.2).contention(threads=2, cpus=2) == ""  # background within the slack
    assert timing(1.0, 1.0).contention(threads=1, cpus=2) == ""  # a core each: no one waited
    note = timing(1.2, 0.8).contention(threads=2, cpus=2)  # another search took what ours wanted
    assert note.startswith(CONTENDED) and "1.2 of 2 CPUs" in note and "got 0.8 of the 2" in note
    assert "inflated" in note
    assert timing(1.5, 0.5).contention(threads=1, cpus=2).startswith(CONTENDED)  # time-shared core
    assert Timing(samples_s=(1.0,), warmup=0).contention(threads=64, cpus=1) == ""  # unknown: no claim


@pytest.mark.skipif(cpu_busy_s(sorted(os.sched_getaffinity(0))) is None, reason="no /proc/stat here")
def test_processes_spinning_on_every_cpu_are_seen_while_timing():
    def work() -> None:
        sum(range(300_000))

    spin = [sys.executable, "-c", "while True: pass"]
    hogs = [subprocess.Popen(spin) for _ in range(2 * len(os.sched_getaffinity(0)))]  # ours gets about half a core
    try:
        time.sleep(0.2)
        timing = measure(work, warmup=1, repeats=40)  # well over the 0.25 s a load reading needs
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert timing.others_cores is not None and timing.others_cores > 0.5, timing.others_cores
    assert timing.contention(threads=1).startswith(CONTENDED)
