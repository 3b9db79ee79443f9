"""The latency harness calls exactly as often as asked and keeps every sample (fake clock)."""

from __future__ import annotations

import itertools

import pytest

from autocompress.exceptions import ConfigError
from autocompress.score import measure


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
