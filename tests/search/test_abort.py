"""The early-abort rule that stands in for pruners in the multi-objective study."""

from __future__ import annotations

from autocompress.search.abort import AbortRule, distance_at


def test_distance_at_uses_the_last_check_at_or_before_the_step():
    curve = [(0, 5.0), (10, 3.0), (20, 2.0)]
    assert distance_at(curve, 0) == 5.0 and distance_at(curve, 15) == 3.0 and distance_at(curve, 99) == 2.0
    assert distance_at(curve, -1) is None


def test_without_a_reference_nothing_is_pruned_and_a_stall_converges():
    rule = AbortRule(reference={}, patience=2, warmup_checks=1)
    verdicts = [rule.check(s, d).action for s, d in [(0, 9.0), (10, 9.0), (20, 9.0), (30, 9.0)]]
    assert "prune" not in verdicts
    assert verdicts[-1] == "converged"


def test_far_behind_the_pareto_set_is_pruned_after_warmup():
    ref = {4: [(0, 1.0), (10, 0.5), (20, 0.2)]}
    rule = AbortRule(reference=ref, far_behind=3.0, warmup_checks=1)
    assert rule.check(0, 10.0).action == "continue"  # warm-up check
    v = rule.check(10, 1.6)
    assert v.action == "prune" and "3x" in v.reason and "0.5" in v.reason


def test_close_to_the_pareto_set_goes_on():
    ref = {4: [(0, 1.0), (10, 0.5)], 7: [(0, 1.0), (10, 0.4)]}
    rule = AbortRule(reference=ref, far_behind=3.0, warmup_checks=0, patience=5)
    assert rule.reference_at(10) == 0.5  # the lenient bar: the worst Pareto trial at that step
    assert rule.check(10, 1.4).action == "continue"


def test_stalled_behind_is_pruned_stalled_ahead_converges():
    ref = {1: [(0, 1.0), (10, 0.5), (20, 0.5), (30, 0.5)]}
    behind = AbortRule(reference=ref, patience=2, warmup_checks=0, far_behind=10.0)
    assert [behind.check(s, 0.9).action for s in (10, 20, 30)] == ["continue", "continue", "prune"]
    ahead = AbortRule(reference=ref, patience=2, warmup_checks=0, far_behind=10.0)
    assert [ahead.check(s, 0.3).action for s in (10, 20, 30)] == ["continue", "continue", "converged"]


def test_improving_trials_reset_patience():
    rule = AbortRule(reference={}, patience=2, warmup_checks=0)
    for s, d in [(0, 10.0), (10, 9.0), (20, 8.0), (30, 7.0)]:
        assert rule.check(s, d).action == "continue"
