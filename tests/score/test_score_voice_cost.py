"""Voice-level latency (measured, exact call counts) and projection (labelled, bandwidth floor)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from _score_items import item

from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.score import (
    UtteranceShape,
    measure_gpt,
    measure_rtf,
    measure_sovits,
    precisions_from_plan,
    profile_voice,
    project_voice,
    voice_cost_metrics,
)
from autocompress.targets import load_target


@pytest.fixture(scope="module")
def voice() -> Voice:
    torch.manual_seed(0)
    sovits = SynthesizerTrn(sovits_tiny(), include_enc_q=False).eval()
    return Voice(Text2SemanticGPT(gpt_tiny()).eval(), sovits)


SHAPE = UtteranceShape(n_phones=20, n_prompt=15, n_tokens=30, n_text=10, ref_frames=40)


@pytest.fixture(scope="module")
def profile(voice):
    return profile_voice(voice, SHAPE)


def test_measure_gpt_runs_the_decode_loop_a_fixed_number_of_steps(voice, monkeypatch):
    calls = {"prefill": 0, "decode_step": 0}
    for name in calls:
        real = getattr(voice.gpt, name)

        def counted(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(voice.gpt, name, counted)
    measured = measure_gpt(voice.gpt, item(0, 8, 10), item(1, 12, 20), n_tokens=7, warmup=1, repeats=2)
    metrics = {m.name: m for m in measured}
    assert calls["decode_step"] == 7 * (1 + 2)
    assert calls["prefill"] == (1 + 2) * 2  # timed prefills + an untimed cache refill per loop
    for name in ("gpt_prefill_ms", "gpt_ms_per_token"):
        assert metrics[name].kind == "measured" and metrics[name].device.startswith("cpu: ")
        assert metrics[name].unit == "ms" and metrics[name].value > 0


def _fixed_timing(monkeypatch, seconds: float, others_cores: float | None = None, own_cores: float = 0.1) -> None:
    """Make voice_cost's timer run the work as usual but report ``seconds`` per call (and
    ``others_cores`` of other processes' load beside ``own_cores`` of its own)."""
    from autocompress.score import timing, voice_cost

    def fake(fn, warmup=2, repeats=5, sync=None, setup=None):  # noqa: ANN001
        for _ in range(warmup + repeats):
            if setup is not None:
                setup()
            fn()
        own = None if others_cores is None else own_cores
        return timing.Timing(samples_s=(seconds,) * repeats, warmup=warmup, others_cores=others_cores,
                             own_cores=own)

    monkeypatch.setattr(voice_cost, "measure", fake)


def test_measure_sovits_normalises_by_audio_seconds(voice, monkeypatch):
    _fixed_timing(monkeypatch, 0.4)
    (m,) = measure_sovits(voice.sovits, item(1, 12, 20), warmup=0, repeats=1)
    assert m.name == "sovits_ms_per_audio_s" and m.kind == "measured"
    assert "0.80 s of audio" in m.note  # 20 codes at 25 Hz
    assert m.value == pytest.approx(400 / 0.8)  # 400 ms for 0.8 s of audio


def test_measure_rtf_divides_by_the_audio_returned(monkeypatch):
    _fixed_timing(monkeypatch, 3.0)
    calls = []

    def speak():
        calls.append(1)
        return [np.zeros(16000), np.zeros((1, 8000))]  # 1.5 s at 16 kHz

    m = measure_rtf(speak, 16000, warmup=1, repeats=2)
    assert len(calls) == 3 and m.name == "rtf" and m.unit == "x" and "1.5 s" in m.note
    assert m.value == pytest.approx(3.0 / 1.5)


def test_projection_is_labelled_and_respects_the_bandwidth_floor(voice, profile):
    rtx = load_target("rtx3060")
    base = {m.name: m for m in project_voice(voice, rtx, profile=profile)}
    assert all(m.kind == "projected" and m.device == "rtx3060" for m in base.values())
    expected = {"gpt_prefill_ms", "gpt_ms_per_token", "sovits_ms_per_audio_s", "rtf", "gpt_gflops_per_token",
                "sovits_gflops_per_audio_s", "memory_bytes", "memory_context_bytes", "memory_weight_bytes",
                "memory_kv_cache_bytes", "memory_activation_bytes"}
    assert set(base) == expected
    layers = sum(p.numel() for p in voice.gpt.h.parameters()) + voice.gpt.ar_predict_layer.weight.numel()
    assert base["gpt_ms_per_token"].value >= layers * 2 / 360e9 * 1e3
    int8 = {m.name: m for m in project_voice(voice, rtx, {"gpt": 8, "dec": 8}, profile=profile)}
    assert int8["memory_weight_bytes"].value < base["memory_weight_bytes"].value
    assert int8["gpt_ms_per_token"].value < base["gpt_ms_per_token"].value
    assert int8["rtf"].value < base["rtf"].value
    nano = {m.name: m for m in project_voice(voice, load_target("jetson-nano"), profile=profile)}
    assert nano["rtf"].value > base["rtf"].value
    kv = 2 * sum(layer.self_attn.inner for layer in voice.gpt.h.layers) * rtx.max_seq_len * 2
    assert base["memory_kv_cache_bytes"].value == kv


def test_voice_cost_metrics_measure_on_cpu_and_project_elsewhere(voice, profile):
    metrics = voice_cost_metrics(voice, load_target("cpu"), profile=profile, warmup=0, repeats=1)
    cpu = {m.name: m for m in metrics}
    for name in ("gpt_prefill_ms", "gpt_ms_per_token", "sovits_ms_per_audio_s", "rtf", "peak_rss_bytes"):
        assert cpu[name].kind == "measured" and cpu[name].device.startswith("cpu: "), name
    assert cpu["memory_bytes"].kind == "projected" and cpu["memory_bytes"].device == "cpu"
    # measured memory: a fresh subprocess builds an fp32 voice of the same configs and runs it
    weights = 4 * sum(p.numel() for p in [*voice.gpt.parameters(), *voice.sovits.parameters()])
    assert cpu["peak_rss_delta_bytes"].value >= weights
    assert cpu["peak_rss_bytes"].value > cpu["peak_rss_delta_bytes"].value
    per_token = cpu["gpt_ms_per_token"].value * SHAPE.n_tokens
    assert cpu["rtf"].value * SHAPE.audio_s * 1e3 >= per_token  # the decode loop is part of the total
    l4 = voice_cost_metrics(voice, load_target("l4"), {"gpt": 4}, profile=profile)
    same = project_voice(voice, load_target("l4"), {"gpt": 4}, profile=profile)
    assert [m.to_dict() for m in l4] == [m.to_dict() for m in same]


def test_a_latency_timed_on_a_shared_machine_says_so(voice, profile, monkeypatch):
    cpus = len(os.sched_getaffinity(0))
    _fixed_timing(monkeypatch, 0.01, others_cores=float(cpus))  # every CPU busy elsewhere
    metrics = {m.name: m for m in voice_cost_metrics(voice, load_target("cpu"), profile=profile, warmup=0, repeats=1)}
    for name in ("gpt_prefill_ms", "gpt_ms_per_token", "sovits_ms_per_audio_s", "rtf"):
        assert f"contended: other processes kept {cpus:.1f} of {cpus} CPUs busy" in metrics[name].note, name
    assert metrics["rtf"].note.count("contended") == 1 and "torch fp32" in metrics["rtf"].note
    _fixed_timing(monkeypatch, 0.01, others_cores=0.0)
    metrics = {m.name: m for m in voice_cost_metrics(voice, load_target("cpu"), profile=profile, warmup=0, repeats=1)}
    assert not any("contended" in m.note for m in metrics.values())


def test_plan_precisions_are_read_from_a_compression_plan():
    from autocompress.compress import CompressionPlan, GroupPlan, QuantConfig

    plan = CompressionPlan(groups={
        "gpt": GroupPlan(quant=QuantConfig(weights="int8", activations="fp16")),
        "dec": GroupPlan(quant=QuantConfig(weights="int4", activations="int8",
                                           op_weights={"conv_transpose": "int4", "conv": "int6"})),
    })
    bits, acts = precisions_from_plan(plan)
    assert bits == {"gpt": 8, "dec": 4, "dec@conv": 6, "dec@conv_transpose": 4}  # each op kind keeps its own
    # every group projects at the float its graph runs: an integer group's float parts are fp16
    # with fp16 activations (a GPU target's form), else fp32, as are the groups it leaves alone
    # (a Pro voice's top-level layers with them)
    assert acts == {"gpt": "fp16", "enc_p": "fp32", "flow": "fp32", "dec": "fp32", "ref_enc": "fp32",
                    "ge_to512": "fp32", "sv_emb": "fp32", "prelu": "fp32"}  # fmt: skip


def test_an_unchanged_teacher_projects_as_the_fp32_graphs_it_exports(voice, profile):
    from autocompress.search.plans import baseline_plan

    rtx = load_target("rtx3060")
    fp32 = {m.name: m.value for m in project_voice(voice, rtx, *precisions_from_plan(baseline_plan("teacher_fp32")),
                                                   profile=profile)}
    fp16 = {m.name: m.value for m in project_voice(voice, rtx, *precisions_from_plan(baseline_plan("teacher_fp16")),
                                                   profile=profile)}
    assert fp32["memory_weight_bytes"] == pytest.approx(2 * fp16["memory_weight_bytes"], rel=0.02)
    assert fp32["gpt_ms_per_token"] > fp16["gpt_ms_per_token"] and fp32["rtf"] > fp16["rtf"]


def test_a_conv_transpose_override_reaches_transposed_convolutions_only():
    """dec at int8 with its upsamplers at fp16: the plain convs still project (and ship) at int8."""
    import torch
    from torch import nn

    from autocompress.score.memory import deployed_weight_bytes
    from autocompress.score.precision import weight_bits_for
    from autocompress.score.profile import profile_module, to_meta
    from autocompress.targets import load_target

    bits = {"dec": 8, "dec@conv_transpose": 16}
    assert weight_bits_for("dec.conv_pre.weight", "conv", bits) == 8
    assert weight_bits_for("dec.ups.0.weight", "conv_transpose", bits) == 16
    assert weight_bits_for("dec.ups.0.weight", "conv", {"dec@conv": 4}) == 4
    assert weight_bits_for("dec.ups.0.weight", "conv_transpose", {"dec@conv": 4, "dec": 8}) == 8

    net = nn.Sequential(nn.Conv1d(64, 64, 7), nn.ConvTranspose1d(64, 32, 8, stride=4))
    x = to_meta(torch.zeros(1, 64, 50))
    ops = [o for o in profile_module(net, lambda m, _: m(x), prefix="dec").ops if o.kind == "conv"]
    assert [o.transposed for o in ops] == [False, True]
    rpi5 = load_target("rpi5")
    mixed, _ = deployed_weight_bytes(net, rpi5, bits, prefix="dec")
    plain, _ = deployed_weight_bytes(net, rpi5, {"dec": 8}, prefix="dec")
    conv, up = 64 * 64 * 7, 64 * 32 * 8
    assert plain - mixed == pytest.approx(-(up * 4 - up * 1))  # only the upsampler left int8 (fp32 on rpi5)
    assert mixed > conv * 1 + up * 1


def test_the_latency_objective_keeps_what_its_real_time_factor_was_timed_on():
    from autocompress.score.metric import Metric
    from autocompress.score.voice_cost import latency_metric

    rtf = Metric("rtf", 0.5, "x", "measured", "cpu: test", "a torch fp32 run of the student; contended")
    latency = latency_metric(rtf, SHAPE)
    assert latency.value == pytest.approx(0.5 * SHAPE.audio_s * 1e3) and latency.kind == "measured"
    assert "torch fp32" in latency.note and "contended" in latency.note and "utterance" in latency.note
    assert latency_metric(Metric("rtf", 0.5, "x", "projected", "l4"), SHAPE).note.endswith("generated codes)")
