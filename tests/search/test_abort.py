"""The early-abort rule that stands in for pruners in the multi-objective study."""

from __future__ import annotations

import pytest

from autocompress.search.abort import AbortRule, distance_at, progress


def _rule(reference=None, start=None, **kw) -> AbortRule:  # noqa: ANN001, ANN003
    rule = AbortRule(reference=reference or {}, **kw)
    rule.start(start or {"dec": 10.0})
    return rule


def test_distance_at_uses_the_last_check_at_or_before_the_step():
    curve = [(0, 5.0), (10, 3.0), (20, 2.0)]
    assert distance_at(curve, 0) == 5.0 and distance_at(curve, 15) == 3.0 and distance_at(curve, 99) == 2.0
    assert distance_at(curve, -1) is None


def test_progress_weighs_every_group_alike_whatever_its_scale():
    start = {"dec": 33.0, "gpt": 0.2}  # a weighted mel L1 and a KL divergence
    assert progress(start, start) == 1.0
    # the GPT getting 50 % worse is not hidden by the decoder's larger numbers
    assert progress({"dec": 22.0, "gpt": 0.3}, start) == pytest.approx((22 / 33 + 1.5) / 2)
    assert progress({"flow": 0.0}, {"flow": 0.0}) == 1.0 and progress({"flow": 0.5}, {"flow": 0.0}) == 1.5


def test_without_a_reference_nothing_is_pruned_and_a_stall_converges():
    rule = _rule(patience=2, warmup_checks=1)
    verdicts = [rule.check(s, {"dec": 9.0}).action for s in (10, 20, 30, 40)]
    assert "prune" not in verdicts and verdicts[-1] == "converged"


def test_steady_small_gains_are_progress_not_a_stall():
    """0.8 % a check never beat a best that moved every check; against its last gain it does."""
    rule = _rule(patience=3, warmup_checks=0)
    d = 10.0
    for s in range(10, 200, 10):
        d *= 0.992
        assert rule.check(s, {"dec": d}).action == "continue", s


def test_a_trial_stops_when_every_group_has_diverged():
    rule = _rule(start={"dec": 10.0, "gpt": 1.0}, patience=100, warmup_checks=1)
    checks = [(10, {"dec": 5.0, "gpt": 0.5}), (20, {"dec": 8.0, "gpt": 0.6}), (30, {"dec": 8.0, "gpt": 0.8})]
    actions = [rule.check(s, d) for s, d in checks]
    assert [v.action for v in actions] == ["continue", "continue", "converged"]  # at 20 the GPT still held
    assert "diverged" in actions[-1].reason


def test_far_behind_the_pareto_set_is_pruned_after_warmup_not_counting_step_0():
    ref = {4: {"dec": [(0, 1.0), (10, 0.5), (20, 0.2)]}}
    rule = _rule(ref, far_behind=3.0, warmup_checks=1)
    assert rule.check(10, {"dec": 10.0}).action == "continue"  # the one warm-up check after training
    v = rule.check(20, {"dec": 0.9})
    assert v.action == "prune" and "dec" in v.reason and "more than 3x" in v.reason and "0.2" in v.reason


def test_each_group_is_compared_only_with_pareto_trials_that_trained_it():
    """A decoder trial far above a GPT-only Pareto trial's (tiny) distance is not behind it."""
    ref = {4: {"gpt": [(0, 0.2), (500, 0.12)]}}
    rule = _rule(ref, start={"dec": 34.9}, far_behind=3.0, warmup_checks=0, patience=5)
    assert rule.standing(500, {"dec": 12.0}) is None
    assert rule.check(500, {"dec": 12.0}).action == "continue"
    both = _rule(ref, start={"dec": 34.9, "gpt": 0.5}, far_behind=3.0, warmup_checks=0, patience=5)
    assert both.standing(500, {"dec": 12.0, "gpt": 0.6}) == (pytest.approx(5.0), "gpt")
    assert both.check(500, {"dec": 12.0, "gpt": 0.6}).action == "prune"  # its best GPT distance: 0.5, 4.2x


def test_a_group_is_judged_by_its_best_check_so_a_first_jump_does_not_prune():
    """Adam's first steps move a near-perfect group away; it leaves with its best weights anyway."""
    ref = {4: {"gpt": [(0, 0.2), (500, 0.12)]}}
    rule = _rule(ref, start={"gpt": 0.1, "dec": 30.0}, far_behind=3.0, warmup_checks=0, patience=5)
    assert rule.check(500, {"gpt": 0.5, "dec": 20.0}).action == "continue"
    assert rule.standing(500, {"gpt": 0.1}) == (pytest.approx(0.1 / 0.12), "gpt")


def test_close_to_the_pareto_set_goes_on():
    ref = {4: {"dec": [(0, 1.0), (10, 0.5)]}, 7: {"dec": [(0, 1.0), (10, 0.4)]}}
    rule = _rule(ref, far_behind=3.0, warmup_checks=0, patience=5)
    assert rule.reference_at("dec", 10) == 0.5  # the lenient bar: the worst Pareto trial at that step
    assert rule.check(10, {"dec": 1.4}).action == "continue"


def test_stalled_behind_is_pruned_stalled_ahead_converges():
    ref = {1: {"dec": [(0, 1.0), (10, 0.5), (20, 0.5), (30, 0.5)]}}
    behind = _rule(ref, start={"dec": 1.0}, patience=2, warmup_checks=0, far_behind=10.0)
    assert [behind.check(s, {"dec": 0.9}).action for s in (10, 20, 30)] == ["continue", "continue", "prune"]
    ahead = _rule(ref, start={"dec": 1.0}, patience=2, warmup_checks=0, far_behind=10.0)
    assert [ahead.check(s, {"dec": 0.3}).action for s in (10, 20, 30)] == ["continue", "continue", "converged"]


def test_improving_trials_reset_patience():
    rule = _rule(patience=2, warmup_checks=0)
    for s, d in [(10, 9.0), (20, 8.0), (30, 7.0), (40, 6.0)]:
        assert rule.check(s, {"dec": d}).action == "continue"


def test_the_reference_holds_only_the_groups_each_pareto_trial_trained():
    from types import SimpleNamespace

    from autocompress.compress import CompressionPlan, GroupPlan, QuantConfig
    from autocompress.search.daemon import abort_reference

    plan = CompressionPlan(groups={"gpt": GroupPlan(quant=QuantConfig(weights="int4")),
                                   "dec": GroupPlan(quant=QuantConfig(weights="fp16"))})  # dec: a cast only
    curves = {"gpt": [[0, 0.2], [10, 0.1]], "dec": [[0, 0.01], [10, 0.01]]}
    trained = SimpleNamespace(number=3, user_attrs={"plan": plan.to_dict(), "finetune_steps": 10,
                                                    "finetune_group_curves": curves})
    untrained = SimpleNamespace(number=4, user_attrs={"plan": plan.to_dict(), "finetune_steps": 0,
                                                      "finetune_group_curves": curves})
    old = SimpleNamespace(number=5, user_attrs={"plan": plan.to_dict(), "finetune_steps": 10,
                                                "finetune_curve": [[0, 1.0]]})  # from before per-group curves
    assert abort_reference([trained, untrained, old]) == {3: {"gpt": [(0, 0.2), (10, 0.1)]}}
    # so a trial that quantizes dec to int4 is not held to the fp16 cast's near-zero distance
    rule = AbortRule(reference=abort_reference([trained]), warmup_checks=0)
    rule.start({"dec": 30.0})
    assert rule.check(10, {"dec": 20.0}).action == "continue"
