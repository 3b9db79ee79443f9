"""Fine-tuning a student: the learning-rate schedule, the best check kept, soft GPT targets."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from autocompress.compress import CompressionPlan, GroupPlan, PruneConfig, QuantConfig, compress
from autocompress.search.abort import AbortRule
from autocompress.search.distill import compressed_groups, gpt_batch, gpt_distill_loss, gpt_logits, teacher_distance
from autocompress.search.finetune import FINAL_LR_SHARE, finetune, lr_factor


@pytest.fixture(scope="module")
def runner(micro_voice, tmp_path_factory):  # noqa: ANN001, ANN201
    from autocompress.search.config import SearchConfig, resolve
    from autocompress.search.pipeline import VoiceTrialRunner

    tmp = tmp_path_factory.mktemp("ft")
    resolved = resolve(SearchConfig(
        target="rtx3060", device="cpu", gpt=micro_voice["gpt"], sovits=micro_voice["sovits"], data=micro_voice["data"],
        space=micro_voice["space"], storage=f"sqlite:///{tmp}/s.db", artifacts=tmp / "art",
    ))  # fmt: skip
    return VoiceTrialRunner.prepare(resolved, tmp / "cache.pt")


PLAN = CompressionPlan(name="t", groups={
    "gpt": GroupPlan(prune=PruneConfig(ratio=0.2), quant=QuantConfig(weights="int4")),
    "dec": GroupPlan(quant=QuantConfig(weights="int8")),
})  # fmt: skip


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    f = lr_factor(100)  # 5 warm-up steps
    rates = [f(i) for i in range(100)]
    assert rates[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a >= b for a, b in zip(rates[5:], rates[6:]))  # then only down
    assert rates[-1] == pytest.approx(FINAL_LR_SHARE, abs=0.01) and f(1000) == pytest.approx(FINAL_LR_SHARE)
    assert lr_factor(1)(0) == 1.0


@pytest.mark.parametrize("steps", [2, 5, 40, 100])
def test_learning_rate_peaks_once_and_ends_at_its_final_share(steps):
    f = lr_factor(steps)
    rates = [f(i) for i in range(steps)]
    assert rates.count(max(rates)) == 1 and max(rates) == 1.0  # the peak is not held for a second step
    assert rates[-1] == pytest.approx(FINAL_LR_SHARE, rel=1e-9)  # the last step is at the end of the cosine


def test_the_student_leaves_with_its_best_check(runner):  # noqa: ANN001
    groups = compressed_groups(PLAN)
    settings = dataclasses.replace(runner.settings, lr=0.3, eval_every=2)  # far too high: it gets worse
    student = compress(runner.teacher, PLAN)
    before = [p.detach().clone() for p in student.gpt.parameters()]
    result = finetune(student, runner.teacher, groups, runner.train_items, runner.cache.targets, 6, settings,
                      AbortRule(patience=100, diverged=1e9), seed=0)
    assert result.curve[0] == (0, 1.0) and [s for s, _ in result.curve] == [0, 2, 4, 6]
    gpt = result.group_curves["gpt"]
    assert min(d for _, d in gpt[1:]) > gpt[0][1], gpt  # every check after training was worse
    assert result.best_steps["gpt"] == 0 and result.distance["gpt"] == gpt[0][1]
    assert all(torch.equal(a, b) for a, b in zip(before, student.gpt.parameters()))  # the untrained GPT back
    assert teacher_distance(student, runner.cache.targets, groups) == pytest.approx(result.distance)


def test_a_good_run_keeps_its_best_weights_and_records_each_group(runner):  # noqa: ANN001
    groups = compressed_groups(PLAN)
    settings = dataclasses.replace(runner.settings, lr=1e-3, eval_every=2)
    student = compress(runner.teacher, PLAN)
    result = finetune(student, runner.teacher, groups, runner.train_items, runner.cache.targets, 8, settings,
                      AbortRule(patience=100), seed=0)
    assert set(result.group_curves) == {"gpt", "dec"}
    for g, c in result.group_curves.items():  # each group leaves with its own best check
        step, d = min(c, key=lambda x: x[1])
        assert result.best_steps[g] == step and result.distance[g] == d
    assert result.progress < 1.0 and result.progress == pytest.approx(min(p for _, p in result.curve))
    assert teacher_distance(student, runner.cache.targets, groups) == pytest.approx(result.distance)


def test_gpt_distillation_has_no_pull_where_the_student_is_the_teacher(runner):  # noqa: ANN001
    """Soft targets only: a student equal to the teacher has nothing to learn, whatever the data's codes."""
    inputs = gpt_batch(runner.train_items[:2])
    with torch.no_grad():
        target = gpt_logits(runner.teacher.gpt, inputs)
    logits = target.clone().requires_grad_(True)
    loss = gpt_distill_loss(logits, target, inputs)
    loss.backward()
    assert math.isclose(float(loss.detach()), 0.0, abs_tol=1e-5) and float(logits.grad.abs().max()) < 1e-6


def test_the_step_0_distance_is_measured_without_dropout(runner):  # noqa: ANN001
    """A student handed over in training mode is measured (and left) in eval mode, even with nothing to train."""
    groups = compressed_groups(PLAN)
    student = compress(runner.teacher, PLAN)
    expected = teacher_distance(student, runner.cache.targets, groups)  # compress returns an eval-mode student
    student.gpt.train()
    student.sovits.train()
    result = finetune(student, runner.teacher, groups, runner.train_items, runner.cache.targets, 0, runner.settings,
                      AbortRule(), seed=0)
    assert result.stopped == "nothing to train" and result.distance == expected
    assert not any(m.training for m in [*student.gpt.modules(), *student.sovits.modules()])


def test_distance_checks_build_no_graph_and_equal_a_plain_recomputation(runner, monkeypatch):  # noqa: ANN001
    from autocompress.search import distill

    groups = compressed_groups(PLAN)
    student = compress(runner.teacher, PLAN)
    targets = runner.cache.targets
    plain = {g: 0.0 for g in groups}  # item by item, with autograd and each weight re-rounded per call
    for item, logits, st in zip(targets.items, targets.gpt_logits, targets.sovits):
        inputs = gpt_batch([item])
        plain["gpt"] += float(distill.gpt_distance(gpt_logits(student.gpt, inputs), logits[None], inputs))
        for g, v in distill.sovits_losses(student, item, st, groups - {"gpt"}).items():
            plain[g] += float(v)
    seen = []
    real = distill.gpt_distance
    monkeypatch.setattr(distill, "gpt_distance", lambda *a: seen.append(a[0].requires_grad) or real(*a))
    assert teacher_distance(student, targets, groups) == {g: v / len(targets.items) for g, v in sorted(plain.items())}
    assert seen and not any(seen)  # the student's logits carried no graph
