"""Roofline projection: bandwidth floors, weight bytes per precision, deployability fallbacks."""

from __future__ import annotations

import pytest
import torch

from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.config import gpt_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.score import deploy_weight, profile_module, project_latency, weight_bits_for
from autocompress.targets import load_target, probe_host

N_PHONES, N_PROMPT, N_TOKENS = 12, 10, 20


@pytest.fixture(scope="module")
def gpt() -> Text2SemanticGPT:
    torch.manual_seed(0)
    return Text2SemanticGPT(gpt_tiny()).eval()


@pytest.fixture(scope="module")
def decode_profile(gpt):
    token = torch.zeros(1, 1, dtype=torch.long, device="meta")
    start = N_PHONES + N_PROMPT
    return profile_module(
        gpt,
        lambda m, cache: m.decode_step(token, cache, start + N_TOKENS // 2),
        setup=lambda m: m.new_cache(1, start + N_TOKENS, N_PHONES),
        prefix="gpt",
    )


def _per_token_weight_elements(gpt) -> int:
    """Weights one decode step must read: every layer, the output layer, one embedding row."""
    layers = sum(p.numel() for p in gpt.h.parameters())
    return layers + gpt.ar_predict_layer.weight.numel() + gpt.config.hidden_dim


def test_per_token_projection_never_beats_the_bandwidth_floor(gpt, decode_profile):
    rtx = load_target("rtx3060")
    assert rtx.bandwidth_gbps == 360.0
    elements = _per_token_weight_elements(gpt)
    for bits, bytes_per in ((None, 2.0), (8, 1.0), (4, 0.5)):
        plan = None if bits is None else {"gpt": bits}
        proj = project_latency(decode_profile, rtx, plan)
        # ~1 % of the elements (biases, norms) stay in fp16 whatever the plan
        assert proj.weight_bytes >= elements * bytes_per
        assert proj.seconds >= proj.weight_bytes / 360e9
        assert proj.seconds >= elements * bytes_per / 360e9
        assert proj.flops > 0 and proj.launches == len(decode_profile.ops)


def test_weight_bytes_halve_from_fp16_to_int8(decode_profile):
    rtx = load_target("rtx3060")
    fp16 = project_latency(decode_profile, rtx, None)
    int8 = project_latency(decode_profile, rtx, {"gpt": 8})
    int4 = project_latency(decode_profile, rtx, {"gpt": 4})
    quant = sum(w.elements for o in decode_profile.ops for w in o.weights if w.quantizable)
    assert fp16.weight_bytes - int8.weight_bytes == pytest.approx(quant * 1.0)
    assert int8.weight_bytes - int4.weight_bytes == pytest.approx(quant * (0.5 - 2 / 32))  # an fp16 scale per 32

    from autocompress.export.ort_quant import NBITS_BLOCK
    from autocompress.score.precision import INT4_BLOCK

    assert INT4_BLOCK == NBITS_BLOCK  # the projection's int4 scales are the export's
    assert int8.seconds < fp16.seconds
    fp32 = project_latency(decode_profile, rtx, None, act_precision="fp32")
    assert fp32.weight_bytes - fp16.weight_bytes == pytest.approx(fp16.weight_bytes)


def test_slower_device_projects_slower(decode_profile):
    names = ("rtx4090", "rtx3060", "jetson-nano")
    times = {t: project_latency(decode_profile, load_target(t)).seconds for t in names}
    assert times["rtx4090"] < times["rtx3060"] < times["jetson-nano"]


def test_undeployable_precisions_fall_back_with_a_note():
    rtx = load_target("rtx3060")
    assert deploy_weight(4, "matmul", "fp16", rtx).storage == "int4"
    d = deploy_weight(4, "conv", "fp16", rtx)
    assert d.storage == "int8" and d.compute == "int8" and "conv int4 not deployable on rtx3060" in d.note
    d = deploy_weight(8, "matmul", "fp16", load_target("jetson-nano"))
    assert d.storage == "fp16" and "not deployable" in d.note
    assert deploy_weight(3, "matmul", "fp16", rtx).storage == "int4"
    assert deploy_weight(6, "matmul", "fp16", rtx).storage == "int8"
    assert deploy_weight(16, "conv", "fp16", rtx).storage == "fp16"
    with pytest.raises(ConfigError):
        deploy_weight(0, "conv", "fp16", rtx)


def test_bf16_activations_are_projected_as_the_fp16_they_ship_as(decode_profile):
    proj = project_latency(decode_profile, load_target("t4"), None, act_precision="bf16")
    assert "bf16 activations ship as fp16: fp16 used" in proj.notes
    assert proj.weight_bytes == project_latency(decode_profile, load_target("t4"), None, "fp16").weight_bytes


def test_plan_lookup_longest_prefix_and_op_kind_keys():
    plan = {"gpt": 8, "gpt.h.layers.0": 4, "dec": 8, "dec@conv": 4, "*": 16}
    assert weight_bits_for("gpt.h.layers.0.linear1.weight", "matmul", plan) == 4
    assert weight_bits_for("gpt.h.layers.10.linear1.weight", "matmul", plan) == 8  # not a prefix of layers.1x
    assert weight_bits_for("gpt.h.layers.1.linear1.weight", "matmul", plan) == 8
    assert weight_bits_for("dec.ups.0.weight", "conv", plan) == 4
    assert weight_bits_for("dec.cond.weight", "matmul", plan) == 8
    assert weight_bits_for("flow.x.weight", "conv", plan) == 16
    assert weight_bits_for("flow.x.weight", "conv", None) is None


def test_the_measured_cpu_target_is_not_projected_unless_probed(decode_profile):
    cpu = load_target("cpu")
    with pytest.raises(ConfigError, match="measured, not projected"):
        project_latency(decode_profile, cpu)
    probed = probe_host(cpu, size_mb=8, repeats=1)
    assert project_latency(decode_profile, probed).seconds > 0


def test_a_target_without_a_rate_for_its_precision_says_the_fp32_rate_was_used(decode_profile):
    """A file of one's own that leaves out the fp16 rate projects fp16 math at the fp32 rate, and says so."""
    t4 = load_target("t4")
    no_fp16 = t4.replace(name="my-t4", peak_tflops={k: v for k, v in t4.peak_tflops.items() if k != "fp16"})
    as_fp32 = t4.replace(peak_tflops={**t4.peak_tflops, "fp16": t4.peak_tflops["fp32"]})
    p = project_latency(decode_profile, no_fp16)
    assert p.compute_s == pytest.approx(project_latency(decode_profile, as_fp32).compute_s)
    assert any("no fp16 rate for my-t4" in n and "fp32 rate" in n for n in p.notes)
    assert not any("rate for" in n for n in project_latency(decode_profile, t4).notes)  # rates given: no note


def test_a_w8a8_layer_reads_its_input_as_int8():
    """A layer with int8 weights ships as static QDQ: its MatMul reads the QuantizeLinear's int8
    output (1 byte an element) and writes float; weight-only int4 and float layers read fp16."""
    lin = torch.nn.Linear(32, 48)
    prof = profile_module(lin, lambda m, _: m(torch.zeros(4, 32, device="meta")), prefix="g")
    (op,) = prof.ops
    assert (op.act_float_in_elements, op.act_float_elements) == (4 * 32, 4 * 32 + 4 * 48)
    rtx = load_target("rtx3060")
    int8 = project_latency(prof, rtx, {"g": 8})
    assert int8.activation_bytes == 4 * 32 * 1 + 4 * 48 * 2
    assert int8.weight_bytes == 32 * 48 * 1 + 48 * 2
    for plan in (None, {"g": 4}):
        assert project_latency(prof, rtx, plan).activation_bytes == (4 * 32 + 4 * 48) * 2
    # int8 weights the target cannot ship (fp16 fallback on a Jetson Nano): fp16 inputs too
    assert project_latency(prof, load_target("jetson-nano"), {"g": 8}).activation_bytes == (4 * 32 + 4 * 48) * 2
