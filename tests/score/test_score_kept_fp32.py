"""An op kind kept at fp32 inside an fp16 group is projected at fp32, as its bundle runs it: the
export leaves those nodes out of the fp16 graph (fp32 weights and math, a Cast on each side)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
from autocompress.export.precision import request_from_plan
from autocompress.models.gpt_sovits.config import gpt_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.score import profile_module, project_latency
from autocompress.score.memory import deployed_weight_bytes
from autocompress.score.precision import Deployed, deploy_weight
from autocompress.score.voice_cost import precisions_from_plan
from autocompress.targets import load_target, target_from_toml


@pytest.fixture(scope="module")
def gpt() -> Text2SemanticGPT:
    torch.manual_seed(0)
    return Text2SemanticGPT(gpt_tiny()).eval()


@pytest.fixture(scope="module")
def prefill(gpt):  # noqa: ANN001, ANN201
    meta = {"device": "meta"}
    phones = torch.zeros(1, 48, dtype=torch.long, **meta)
    bert = torch.zeros(1, gpt.config.bert_dim, 48, **meta)
    prompt = torch.zeros(1, 32, dtype=torch.long, **meta)
    return profile_module(gpt, lambda m, _: m.prefill_logits(phones, bert, prompt), prefix="gpt")


def _gpt(**op_weights: str) -> CompressionPlan:
    return CompressionPlan({"gpt": GroupPlan(quant=QuantConfig("fp16", "fp16", op_weights=op_weights))})


def test_a_32_bit_weight_ships_and_computes_in_fp32_whatever_the_group_s_float() -> None:
    """A 32-bit key was read as "a float at the op's activation precision": fp16 in an fp16 group."""
    rtx = load_target("rtx3060")
    for kind in ("matmul", "conv"):
        d = deploy_weight(32, kind, "fp16", rtx)
        assert d == Deployed("fp32", "fp32") and d.weight_bytes_per_element == 4
    assert deploy_weight(16, "matmul", "fp16", rtx) == Deployed("fp16", "fp16")  # its own rung
    assert deploy_weight(None, "matmul", "fp16", rtx) == Deployed("fp16", "fp16")


def test_linears_kept_at_fp32_in_an_fp16_gpt_are_projected_at_fp32(gpt, prefill) -> None:  # noqa: ANN001
    """The export keeps every linear of this plan at fp32 (request_from_plan); the projection
    counted their weights at 2 bytes and their math at the fp16 rate."""
    rtx = load_target("rtx3060")
    kept, plain = _gpt(linear="fp32"), _gpt()
    assert request_from_plan(kept, "gpt").keep_op_types  # the export's fact this test relies on
    kept_bits, kept_acts = precisions_from_plan(kept)
    plain_bits, plain_acts = precisions_from_plan(plain)
    assert kept_acts == plain_acts and kept_bits == {"gpt@matmul": 32}

    # memory: each linear weight 4 bytes instead of 2; the rest of the fp16 group unchanged
    linear_elements = sum(
        p.numel() for m in gpt.modules() if not isinstance(m, nn.Embedding)
        for p in m.parameters(recurse=False) if p.dim() == 2
    )  # fmt: skip
    kept_w, _ = deployed_weight_bytes(gpt, rtx, kept_bits, kept_acts, prefix="gpt")
    plain_w, _ = deployed_weight_bytes(gpt, rtx, plain_bits, plain_acts, prefix="gpt")
    assert kept_w - plain_w == pytest.approx(2 * linear_elements)

    # latency: the linears' math at the fp32 rate, every other op as before
    a = project_latency(prefill, rtx, kept_bits, kept_acts)
    b = project_latency(prefill, rtx, plain_bits, plain_acts)
    matmul_flops = sum(op.flops for op in prefill.ops if any(w.quantizable for w in op.weights))
    assert matmul_flops > 0
    per_flop = 1 / (rtx.peak_flops("fp32") * rtx.efficiency) - 1 / (rtx.peak_flops("fp16") * rtx.efficiency)
    assert a.compute_s - b.compute_s == pytest.approx(matmul_flops * per_flop, rel=1e-9)
    assert a.weight_bytes > b.weight_bytes and a.seconds > b.seconds


def test_an_op_kind_a_target_cannot_run_in_fp16_is_projected_at_the_fp32_it_falls_back_to() -> None:
    """with_fallback on a target with fp16 matmul but no fp16 conv keeps ref_enc's convolutions
    at fp32 in its fp16 graph: they were projected as fp16."""
    target = target_from_toml({
        "kind": "gpu", "memory_gb": 8, "bandwidth_gbps": 100, "default_precision": "fp16",
        "runtimes": ["onnxruntime-cuda"], "peak_tflops": {"fp32": 1, "fp16": 2},
        "deployable": {"matmul": ["fp32", "fp16"], "conv": ["fp32"]},
        "budget": {"vram_gb": 1, "rtf": 0.5, "max_seq_len": 100},
        "projection": {"launch_overhead_us": 5, "efficiency": 0.5, "context_mb": 300},
    }, "no-fp16-conv")  # fmt: skip
    plan = CompressionPlan({"ref_enc": GroupPlan(quant=QuantConfig("fp16", "fp16"))}).with_fallback(target)
    assert plan.group("ref_enc").quant.weight_precision("conv") == "fp32"
    bits, acts = precisions_from_plan(plan)
    assert acts["ref_enc"] == "fp16" and bits["ref_enc@conv"] == 32
    assert deploy_weight(bits["ref_enc@conv"], "conv", acts["ref_enc"], target) == Deployed("fp32", "fp32")
