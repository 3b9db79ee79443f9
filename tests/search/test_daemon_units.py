"""The daemon's bookkeeping, on stand-ins for the study: ETA, events, students kept."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

import autocompress.search.daemon as daemon


def _daemon(n_trials: int, timeout_s: float | None, durations: list[float], elapsed_s: float) -> daemon._Daemon:
    d = object.__new__(daemon._Daemon)
    d.r = SimpleNamespace(n_trials=n_trials, config=SimpleNamespace(timeout_s=timeout_s))
    d.durations = [(None, s, True) for s in durations]
    d.study = None
    d.loop_started = time.monotonic() - elapsed_s
    return d


def test_the_eta_counts_only_the_trials_that_start_before_the_timeout(monkeypatch):
    monkeypatch.setattr(daemon, "count_done", lambda study: 10)
    # 90 trials to go at 10 s each, but 45 s of the 100 s budget left: 5 more start (this one included)
    assert _daemon(100, 100.0, [10.0, 10.0, 10.0], 55.0)._eta() == pytest.approx(50.0)
    assert _daemon(100, None, [10.0, 10.0, 10.0], 55.0)._eta() == pytest.approx(900.0)
    assert _daemon(12, 1000.0, [10.0, 10.0, 10.0], 55.0)._eta() == pytest.approx(20.0)  # the count ends first


def test_before_any_searched_trial_the_eta_follows_the_fine_tuned_baseline(monkeypatch):
    """After the baselines the ETA was the mean of all three, two of which (the teacher in fp32 and
    fp16) fine-tune nothing: it undershot the first searched trial four-fold on a full-size voice."""
    monkeypatch.setattr(daemon, "count_done", lambda study: 3)
    d = _daemon(10, None, [], 0.0)
    d.durations = [("teacher_fp32", 15.0, False), ("teacher_fp16", 16.0, False), ("seed_recipe", 64.0, True)]
    assert d._eta() == pytest.approx(7 * 64.0)
    d.durations = d.durations[:2]  # no fine-tuned trial yet: the teacher baselines are all there is
    assert d._eta() == pytest.approx(7 * 15.5)
    d.durations += [(None, 40.0, True), (None, 2.0, False)]  # searched trials (a repeat ends at once) come first
    assert d._eta() == pytest.approx(7 * 21.0)


def test_the_abort_rule_holds_a_trial_only_to_pareto_trials_of_as_many_steps():
    """A study resumed with more --steps: a 100-step trial's end is no bar for step 100 of 5000
    (still warming up), so it must not prune the new trial there."""
    import optuna

    from autocompress.compress import CompressionPlan, GroupPlan, QuantConfig

    plan = CompressionPlan(groups={"dec": GroupPlan(quant=QuantConfig(weights="int4"))}).to_dict()

    def done(number: int, steps: int, curve: list[list[float]], values: list[float]):
        attrs = {"plan": plan, "steps": steps, "finetune_steps": int(curve[-1][0]), "finetune_group_curves": {"dec": curve}}
        t = optuna.trial.create_trial(values=values, user_attrs=attrs, constraints={"memory_budget": -1.0})
        t.number = number
        return t

    short = done(0, 100, [[0, 10.0], [100, 1.0]], [0.9, 10.0, 100.0])
    long = done(1, 5000, [[0, 10.0], [100, 9.0], [5000, 1.0]], [0.8, 9.0, 90.0])  # both on the front
    d = object.__new__(daemon._Daemon)
    d.r = SimpleNamespace(steps=5000, space=SimpleNamespace(finetune=SimpleNamespace(
        patience=4, far_behind=3.0, warmup_checks=0)))
    d.study = SimpleNamespace(get_trials=lambda deepcopy=False: [short, long])
    assert list(d._abort_rule().reference) == [1]
    d.study = SimpleNamespace(get_trials=lambda deepcopy=False: [short])  # the short trial alone on the front
    rule = d._abort_rule()
    rule.start({"dec": 10.0})
    assert rule.check(100, {"dec": 8.0}).action == "continue"  # 8x the short trial's end: no bar at step 100 of 5000
