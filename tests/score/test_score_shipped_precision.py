"""A plan's float precisions are projected as its bundle ships them: bf16 as fp16, and the
plan's fp16 activations of a group exported as an fp32 graph as fp32."""

from __future__ import annotations

import pytest
import torch

from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.models.gpt_sovits.config import gpt_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.score import profile_module, project_latency
from autocompress.score.precision import activation_precision
from autocompress.score.voice_cost import precisions_from_plan
from autocompress.targets import load_target


@pytest.fixture(scope="module")
def prefill_profile():  # noqa: ANN201
    """The tiny GPT's prefill of 48 phones and a 32-code prompt: enough math to be compute-bound."""
    torch.manual_seed(0)
    gpt = Text2SemanticGPT(gpt_tiny()).eval()
    meta = {"device": "meta"}
    phones = torch.zeros(1, 48, dtype=torch.long, **meta)
    bert = torch.zeros(1, gpt.config.bert_dim, 48, **meta)
    prompt = torch.zeros(1, 32, dtype=torch.long, **meta)
    return profile_module(gpt, lambda m, _: m.prefill_logits(phones, bert, prompt), prefix="gpt")


def _projected(profile, plan: CompressionPlan, target):  # noqa: ANN001, ANN202
    return project_latency(profile, target, *precisions_from_plan(plan.with_fallback(target)))


def _plan(weights: str, activations: str) -> CompressionPlan:
    return CompressionPlan({"gpt": GroupPlan(quant=QuantConfig(weights, activations))})


def test_a_bf16_plan_is_projected_as_the_fp16_bundle_it_ships(prefill_profile) -> None:  # noqa: ANN001
    """On an Ampere GeForce bf16 math runs at half the fp16 rate: a bf16 plan was projected at
    it, while its bundle runs fp16."""
    rtx = load_target("rtx3060")
    assert _plan("bf16", "bf16").with_fallback(rtx) == _plan("fp16", "fp16").with_fallback(rtx)
    bf16, fp16 = _projected(prefill_profile, _plan("bf16", "bf16"), rtx), _projected(prefill_profile, _plan("fp16", "fp16"), rtx)
    assert bf16.compute_s == fp16.compute_s and bf16.seconds == fp16.seconds
    # a plan projected without the fallback too: bf16 activations project as the fp16 they ship as
    assert activation_precision("gpt", "bf16", rtx) == ("fp16", "bf16 activations ship as fp16: fp16 used")
    raw = project_latency(prefill_profile, rtx, *precisions_from_plan(_plan("bf16", "bf16")))
    assert raw.compute_s == fp16.compute_s


def test_bf16_on_a_target_without_fp16_is_the_fp32_it_ships() -> None:
    """The cpu target lists bf16 matmul; the export has no bf16 to give it, and its fp16 graph
    does not run there: the group ships fp32."""
    cpu = load_target("cpu")
    assert _plan("bf16", "bf16").with_fallback(cpu).group("gpt").quant.is_identity
    assert activation_precision("gpt", "bf16", cpu)[0] == "fp32"


@pytest.mark.parametrize("weights", ["fp32", "int4"])
def test_fp16_activations_of_an_fp32_graph_are_projected_as_it_runs(prefill_profile, weights: str) -> None:  # noqa: ANN001
    """fp32 weights with fp16 activations ship as an fp32 graph (and int4 weight-only layers take
    the graph's float inputs): the plan is the one with fp32 activations, projected alike."""
    rtx = load_target("rtx3060")
    asked, graph = _plan(weights, "fp16").with_fallback(rtx), _plan(weights, "fp32").with_fallback(rtx)
    assert asked == graph
    assert _projected(prefill_profile, asked, rtx) == _projected(prefill_profile, graph, rtx)
    if weights == "fp32":  # the teacher's graph: projected in fp32, as the teacher is
        teacher = project_latency(prefill_profile, rtx, *precisions_from_plan(CompressionPlan()))
        assert _projected(prefill_profile, asked, rtx) == teacher
