"""A plan is projected at the float its exported graphs run: fp16 for a group stored as fp16
and for an int8 / int4 group with fp16 activations (a GPU target's QDQ and MatMulNBits graphs,
fp16 float parts and KV cache), fp32 for every other (a CPU target's integer graphs included)."""

from __future__ import annotations

import pytest
import torch

from autocompress.compress.plan import ACTIVATION_PRECISIONS, CompressionPlan, GroupPlan, QuantConfig
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.score import project_latency
from autocompress.score.voice_cost import UtteranceShape, precisions_from_plan, profile_voice, project_voice
from autocompress.targets import load_target

SHAPE = UtteranceShape(n_phones=48, n_prompt=32, n_tokens=20, n_text=10, ref_frames=40)


@pytest.fixture(scope="module")
def voice() -> Voice:
    torch.manual_seed(0)
    return Voice(Text2SemanticGPT(gpt_tiny()).eval(), SynthesizerTrn(sovits_tiny(), include_enc_q=False).eval())


@pytest.fixture(scope="module")
def profile(voice):  # noqa: ANN001, ANN201
    return profile_voice(voice, SHAPE)


def _gpt(weights: str, activations: str) -> CompressionPlan:
    return CompressionPlan({"gpt": GroupPlan(quant=QuantConfig(weights, activations))})


def _figures(voice, profile, plan: CompressionPlan, target) -> dict:  # noqa: ANN001
    return {m.name: (m.value, m.note) for m in project_voice(voice, target, *precisions_from_plan(plan), profile=profile)}


@pytest.mark.parametrize("weights", ["fp32", "fp16", "bf16", "int8", "int4"])
def test_activations_the_graph_ignores_project_identically(voice, profile, weights: str) -> None:  # noqa: ANN001
    """The export builds a float group's graph from its weights alone (fp32 weights with fp16
    activations shipped an fp32 graph but were projected in fp16), and an integer group's float
    parts from whether its activations are 16-bit floats. Plans are taken raw, as a caller may
    pass them."""
    rtx = load_target("rtx3060")
    same = [ACTIVATION_PRECISIONS] if not weights.startswith("int") else [("fp32", "int8"), ("fp16", "bf16")]
    for acts in same:
        plans = [_gpt(weights, a) for a in acts]
        assert len({str(precisions_from_plan(p)) for p in plans}) == 1
        first = _figures(voice, profile, plans[0], rtx)
        for plan in plans[1:]:
            assert _figures(voice, profile, plan, rtx) == first


def test_an_int4_group_s_float_parts_project_at_the_fp32_rate(voice, profile) -> None:  # noqa: ANN001
    """MatMulNBits with T = float32 in an fp32 graph: the dequantised matmuls, attention and every
    other op run fp32 math on fp32 activations, as in the fp32 teacher's graph; only the weights
    read shrink (4 bits plus an fp32 scale per block of 32). A W4A16 plan was projected at the
    fp16 rate on fp16 activations."""
    rtx = load_target("rtx3060")
    prefill = profile.gpt_prefill
    int4 = project_latency(prefill, rtx, *precisions_from_plan(_gpt("int4", "fp32")))
    teacher = project_latency(prefill, rtx, *precisions_from_plan(CompressionPlan()))
    assert int4.flops == teacher.flops and int4.flops > 0
    assert int4.compute_s == pytest.approx(teacher.compute_s)
    assert int4.activation_bytes == pytest.approx(teacher.activation_bytes)
    w4a16 = project_latency(prefill, rtx, {"gpt": 4}, "fp16")  # what it was projected as
    assert w4a16.compute_s < int4.compute_s and int4.weight_bytes > w4a16.weight_bytes  # fp32 scales
    assert int4.weight_bytes < teacher.weight_bytes / 2
    rtf = _figures(voice, profile, _gpt("int4", "fp32"), rtx)["rtf"]
    assert rtf[1].count("int4 gpt: weight-only MatMulNBits in an fp32 graph") == 1


def test_a_gpu_target_s_integer_groups_project_fp16_float_parts_and_kv_cache(voice, profile) -> None:  # noqa: ANN001
    """On a GPU target an int8 or int4 group ships fp16 float parts and an fp16 KV cache; they
    were projected (and shipped) in fp32, so int8 came out larger and slower than fp16."""
    rtx = load_target("rtx3060")
    decode = profile.gpt_decode
    plans = {w: _gpt(w, "fp32").with_fallback(rtx) for w in ("int8", "int4")}
    fp16, fp32 = _gpt("fp16", "fp16"), _gpt("int8", "int8")
    kv = {name: _figures(voice, profile, plan, rtx)["memory_kv_cache_bytes"][0]
          for name, plan in (*plans.items(), ("fp16", fp16), ("fp32-floats", fp32))}  # fmt: skip
    assert kv["int8"] == kv["int4"] == kv["fp16"] == kv["fp32-floats"] / 2
    for weights, plan in plans.items():
        assert precisions_from_plan(plan)[1]["gpt"] == "fp16"
        got = project_latency(decode, rtx, *precisions_from_plan(plan))
        floats32 = project_latency(decode, rtx, *precisions_from_plan(_gpt(weights, "fp32")))
        assert got.activation_bytes < floats32.activation_bytes and got.seconds < floats32.seconds
        assert got.weight_bytes < project_latency(decode, rtx, *precisions_from_plan(fp16)).weight_bytes
    rtf = _figures(voice, profile, plans["int8"], rtx)["rtf"][1]
    assert "int8 gpt: W8A8 QDQ in an fp16 graph (int8 kernels as TensorRT builds them" in rtf
    cpu = _gpt("int8", "fp32").with_fallback("cpu")  # a CPU target keeps fp32 float parts
    assert precisions_from_plan(cpu)[1]["gpt"] == "fp32"


def test_an_int8_group_keeps_its_fp32_float_parts_and_kv_cache(voice, profile) -> None:  # noqa: ANN001
    """A W8A8 QDQ graph computes its int8 layers in int8 and everything else in fp32; the export
    stores the KV cache in half only for an fp16 GPT."""
    rtx = load_target("rtx3060")
    decode = profile.gpt_decode
    int8 = project_latency(decode, rtx, *precisions_from_plan(_gpt("int8", "int8")))
    assert int8.compute_s > project_latency(decode, rtx, {"gpt": 8}, "fp16").compute_s
    assert int8.activation_bytes < project_latency(decode, rtx, None, "fp32").activation_bytes  # int8 inputs
    kv = {name: _figures(voice, profile, plan, rtx)["memory_kv_cache_bytes"][0]
          for name, plan in (("int8", _gpt("int8", "int8")), ("fp32", CompressionPlan()), ("fp16", _gpt("fp16", "fp16")))}
    assert kv["int8"] == kv["fp32"] == 2 * kv["fp16"]
    rtf = _figures(voice, profile, _gpt("int8", "int8"), rtx)["rtf"]
    assert rtf[1].count("int8 gpt: W8A8 QDQ in an fp32 graph") == 1
    assert "as TensorRT builds them" in rtf[1]  # the runtime the int8 rate assumes, on a GPU


def test_each_call_s_activation_peak_is_at_its_own_graph_s_width(voice, profile) -> None:  # noqa: ANN001
    """An fp32 GPT and an fp16 SoVITS: the SoVITS decode's peak was counted at 4 bytes per
    element because the GPT runs fp32."""
    rtx = load_target("rtx3060")
    fp16 = QuantConfig("fp16", "fp16")
    plan = CompressionPlan({g: GroupPlan(quant=fp16) for g in ("enc_p", "flow", "dec", "ref_enc")})
    got = _figures(voice, profile, plan, rtx)["memory_activation_bytes"][0]
    want = max(profile.gpt_prefill.peak_activation_bytes(4), profile.gpt_decode.peak_activation_bytes(4),
               profile.sovits_decode.peak_activation_bytes(2))
    assert got == want < profile.sovits_decode.peak_activation_bytes(4)


def test_the_int8_note_names_the_float_the_cuda_provider_runs_qdq_in(voice, profile) -> None:  # noqa: ANN001
    """Without TensorRT, onnxruntime's CUDA provider dequantizes a QDQ graph and runs it in the
    graph's float: fp16 for a GPU target's export (fp16 float parts), fp32 for one with fp32
    float parts. The note said fp32 for both."""
    rtx = load_target("rtx3060")
    half = _figures(voice, profile, _gpt("int8", "fp32").with_fallback(rtx), rtx)["rtf"][1]
    assert "onnxruntime's CUDA provider runs QDQ in fp16" in half and "QDQ in fp32" not in half
    full = _figures(voice, profile, _gpt("int8", "int8"), rtx)["rtf"][1]
    assert "onnxruntime's CUDA provider runs QDQ in fp32" in full
