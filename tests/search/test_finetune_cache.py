"""The teacher's SoVITS outputs kept for fine-tuning: every training item's computed once while
they fit the memory budget, and fine-tuning with them is exactly fine-tuning without."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter

import pytest
import torch

from autocompress.compress import CompressionPlan, GroupPlan, PruneConfig, QuantConfig, compress
from autocompress.search import finetune as finetune_mod
from autocompress.search.abort import AbortRule
from autocompress.search.distill import Latents, compressed_groups, gpt_batch, gpt_logits, teacher_latents
from autocompress.search.finetune import (
    CACHE_BUDGET_BYTES,
    TeacherLatentCache,
    default_cache_budget,
    finetune,
    latents_bytes,
)

SOVITS_PLAN = CompressionPlan(name="sovits", groups={
    "enc_p": GroupPlan(quant=QuantConfig(weights="int8")),
    "flow": GroupPlan(prune=PruneConfig(ratio=0.2), quant=QuantConfig(weights="int8")),
    "dec": GroupPlan(quant=QuantConfig(weights="int4")),
})  # fmt: skip


@pytest.fixture(scope="module")
def runner(micro_voice, tmp_path_factory):  # noqa: ANN001, ANN201
    from autocompress.search.config import SearchConfig, resolve
    from autocompress.search.pipeline import VoiceTrialRunner

    tmp = tmp_path_factory.mktemp("ftc")
    resolved = resolve(SearchConfig(
        target="rtx3060", device="cpu", gpt=micro_voice["gpt"], sovits=micro_voice["sovits"], data=micro_voice["data"],
        space=micro_voice["space"], storage=f"sqlite:///{tmp}/s.db", artifacts=tmp / "art",
    ))  # fmt: skip
    return VoiceTrialRunner.prepare(resolved, tmp / "cache.pt")


@pytest.fixture
def counted(monkeypatch):  # noqa: ANN001, ANN201
    """Names of the items the teacher's latents were computed for, one entry per computation."""
    calls: Counter[str] = Counter()

    def counting(teacher, item):  # noqa: ANN001, ANN202
        calls[item.name] += 1
        return teacher_latents(teacher, item)

    monkeypatch.setattr(finetune_mod, "teacher_latents", counting)
    return calls


def _train(runner, items, latents, steps=6, batch_size=2, seed=3, plan=SOVITS_PLAN, lr=1e-3):  # noqa: ANN001, ANN202
    groups = compressed_groups(plan)
    settings = dataclasses.replace(runner.settings, lr=lr, eval_every=3, batch_size=batch_size)
    student = compress(runner.teacher, plan)
    result = finetune(student, runner.teacher, groups, items, runner.cache.targets, steps, settings,
                      AbortRule(patience=100, diverged=1e9), seed=seed, latents=latents)
    return result, [p.detach().clone() for p in student.sovits.parameters()]


def test_fine_tuning_with_kept_teacher_outputs_is_bit_identical_to_without(runner, counted):  # noqa: ANN001
    warm = TeacherLatentCache(runner.teacher)
    _train(runner, runner.train_items, warm, seed=7)  # an earlier trial fills it
    assert warm.kept_items == len(counted) and not warm.left_out
    counted.clear()
    cached, cached_weights = _train(runner, runner.train_items, warm)
    assert not counted  # every item came from the cache
    plain, plain_weights = _train(runner, runner.train_items, TeacherLatentCache(runner.teacher, budget_bytes=0))
    assert sum(counted.values()) == 6 * 2  # nothing kept: the teacher ran for every item of every step
    assert cached.losses == plain.losses and cached.curve == plain.curve and cached.distance == plain.distance
    assert all(torch.equal(a, b) for a, b in zip(cached_weights, plain_weights, strict=True))


def test_each_training_items_teacher_outputs_are_computed_once_beyond_256_items(runner, counted):  # noqa: ANN001
    """The cache used to keep 256 items; the search loads up to 512."""
    items = [dataclasses.replace(it, name=f"{i:03d}-{it.name}") for i in range(300)
             for it in [runner.train_items[i % len(runner.train_items)]]]
    cache = TeacherLatentCache(runner.teacher)
    flow = CompressionPlan(name="flow", groups={"flow": SOVITS_PLAN.groups["flow"]})  # the cheapest to train
    _train(runner, items, cache, steps=50, batch_size=16, plan=flow)
    assert len(counted) > 256  # the draws reached items the old cache left out
    assert set(counted.values()) == {1}, [n for n, c in counted.items() if c > 1][:5]
    assert cache.kept_items == len(counted) and not cache.left_out
    sizes = {it.name: latents_bytes(teacher_latents(runner.teacher, it)) for it in runner.train_items}
    assert cache.kept_bytes == sum(sizes[n.split("-", 1)[1]] for n in counted)


def test_items_beyond_the_budget_are_computed_again_with_the_same_result_and_one_warning(
    runner, counted, caplog,  # noqa: ANN001
):
    items = runner.train_items
    one = latents_bytes(teacher_latents(runner.teacher, items[0]))
    cache = TeacherLatentCache(runner.teacher, budget_bytes=one)
    with caplog.at_level(logging.WARNING, logger="autocompress.search.finetune"):
        first = [cache.get(it) for it in items]
        again = [cache.get(it) for it in items]
    assert counted == Counter({items[0].name: 1, **{it.name: 2 for it in items[1:]}})
    assert cache.kept_items == 1 and cache.kept_bytes == one and cache.left_out == {it.name for it in items[1:]}
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("ge", "m_p", "logs_p", "y_mask", "z"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cache full at 1 training items" in warnings[0], warnings


def test_kept_bytes_count_a_shared_storage_once():
    m_p, logs_p = torch.zeros(1, 8, 10).split(4, dim=1)  # as the prior's statistics come: halves of one tensor
    lat = Latents(torch.zeros(1, 2, 1), m_p, logs_p, torch.ones(1, 1, 10), torch.zeros(1, 4, 10))
    assert latents_bytes(lat) == 4 * (2 + 80 + 10 + 40)


@pytest.mark.parametrize(("free", "budget"), [(None, CACHE_BUDGET_BYTES), (2**30, 2**28), (2**40, CACHE_BUDGET_BYTES)])
def test_the_default_budget_is_2_gib_or_a_quarter_of_the_free_memory(monkeypatch, free, budget):  # noqa: ANN001
    monkeypatch.setattr(finetune_mod, "free_memory_bytes", lambda device: free)
    assert default_cache_budget(torch.device("cpu")) == budget


def test_the_free_memory_of_this_machine_is_known():
    free = finetune_mod.free_memory_bytes(torch.device("cpu"))
    assert free is None or free > 0


# --------------------------------------------------------------------------- the teacher GPT's logits

GPT_PLAN = CompressionPlan(name="gpt", groups={
    "gpt": GroupPlan(prune=PruneConfig(ratio=0.2), quant=QuantConfig(weights="int4")),
})  # fmt: skip


@pytest.fixture
def gpt_calls(runner, monkeypatch):  # noqa: ANN001, ANN201
    """Names of the items the teacher GPT ran on, one entry per item per forward; and the batch sizes."""
    by_codes = {tuple(it.codes.tolist()): it.name for it in runner.train_items}
    calls: Counter[str] = Counter()
    sizes: list[int] = []
    forward = runner.teacher.gpt.forward_train

    def counting(phones, phones_len, bert, codes, codes_len, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        sizes.append(len(codes))
        for row, n in zip(codes, codes_len.tolist()):
            calls[by_codes[tuple(row[:n].tolist())]] += 1
        return forward(phones, phones_len, bert, codes, codes_len, *a, **k)

    monkeypatch.setattr(runner.teacher.gpt, "forward_train", counting)
    return calls, sizes


def test_the_teacher_gpt_runs_once_per_training_item_across_steps_and_fine_tunes(runner, gpt_calls):  # noqa: ANN001
    calls, sizes = gpt_calls
    cache = TeacherLatentCache(runner.teacher)
    _train(runner, runner.train_items, cache, steps=6, batch_size=3, seed=3, plan=GPT_PLAN)
    first = dict(calls)
    _train(runner, runner.train_items, cache, steps=6, batch_size=3, seed=8, plan=GPT_PLAN)  # a later trial
    assert len(first) > 3 and set(calls.values()) == {1}, calls  # 36 draws of 5 items: each item computed once
    assert set(sizes) == {1}  # each item alone, as the held-out targets are made
    assert cache.kept_items == len(calls) and not cache.left_out
    vocab = runner.teacher.gpt.config.vocab_size
    assert cache.kept_bytes == sum(4 * (len(it.codes) + 1) * vocab for it in runner.train_items if it.name in calls)


def test_fine_tuning_the_gpt_with_kept_teacher_logits_matches_the_batched_teacher_to_rounding(runner, monkeypatch):  # noqa: ANN001
    """At lr 0 the student holds still, so each step's loss compares the targets of one batch of
    items of different lengths (padded differently) against the teacher run on the whole batch."""
    kept, _ = _train(runner, runner.train_items, TeacherLatentCache(runner.teacher), steps=6, batch_size=3,
                     plan=GPT_PLAN, lr=0.0)
    monkeypatch.setattr(
        finetune_mod, "gpt_targets", lambda latents, batch, valid: gpt_logits(runner.teacher.gpt, gpt_batch(batch))
    )
    batched, _ = _train(runner, runner.train_items, TeacherLatentCache(runner.teacher), steps=6, batch_size=3,
                        plan=GPT_PLAN, lr=0.0)
    assert len(set(kept.losses)) > 1  # the batches differ
    assert kept.losses == pytest.approx(batched.losses, rel=2e-5, abs=0)  # fp32 KL of near-equal distributions: ~5e-6


def test_kept_teacher_logits_are_the_batched_teachers_at_each_items_positions(runner):  # noqa: ANN001
    items = runner.train_items
    inputs = gpt_batch(items)
    target = finetune_mod.gpt_targets(TeacherLatentCache(runner.teacher), items, inputs[-1])
    with torch.no_grad():
        batched = gpt_logits(runner.teacher.gpt, inputs)
    valid = inputs[-1]
    assert len(set(valid.sum(1).tolist())) > 1  # items of different lengths
    assert target.shape == batched.shape and not target[~valid].any()
    scale = float(batched[valid].abs().max())
    torch.testing.assert_close(target[valid], batched[valid], rtol=0, atol=1e-5 * scale)


def test_logits_beyond_the_budget_are_computed_again_and_share_the_one_warning(runner, gpt_calls, caplog):  # noqa: ANN001
    calls, _ = gpt_calls
    items = runner.train_items
    one = finetune_mod.logits_bytes(finetune_mod.teacher_logits(runner.teacher, items[0]))
    calls.clear()
    cache = TeacherLatentCache(runner.teacher, budget_bytes=one)
    with caplog.at_level(logging.WARNING, logger="autocompress.search.finetune"):
        first = [cache.logits(it) for it in items]
        again = [cache.logits(it) for it in items]
        cache.get(items[0])  # the SoVITS latents do not fit either: no second warning
    assert calls == Counter({items[0].name: 1, **{it.name: 2 for it in items[1:]}})
    assert cache.kept_items == 1 and cache.kept_bytes == one and cache.left_out == {it.name for it in items}
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cache full at 1 training items" in warnings[0], warnings
