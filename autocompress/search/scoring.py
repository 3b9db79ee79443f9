"""Score a fine-tuned student for the study's target: quality, latency, memory, constraints.

- Quality: the student speaks the held-out sentences (greedy GPT, noise-free SoVITS, the
  prompt's reference) and is compared with the teacher's speech cached for the study; the
  score package turns the figures into one composite quality score with a release floor.
  Always measured here.
- Latency and memory: projected for the target from meta-device profiles of one reference
  sentence (GPT prefill + one decode step per code + SoVITS synthesis) at the plan's deployed
  precisions; for a measured target (``cpu``), latency is timed on this machine instead.

The three objectives are ``quality`` (higher is better), ``latency_ms`` and ``memory_mb``.
Constraints (<= 0 is satisfied): memory over the target's budget, real-time factor over its
budget, and quality under the release floor, each relative to its bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autocompress.compress.plan import CompressionPlan, precision_bits
from autocompress.models.gpt_sovits.voice import MODULE_GROUPS, Voice
from autocompress.score.memory import deployed_weight_bytes, kv_cache_bytes, project_memory
from autocompress.score.metric import Metric, measured, projected
from autocompress.score.quality import QualityReport, ReleaseFloor, compare_audio
from autocompress.score.profile import profile_module, to_meta
from autocompress.score.projection import project_latency
from autocompress.score.timing import measure
from autocompress.search.cache import TeacherCache
from autocompress.search.synth import Speech, synthesize
from autocompress.store import Objectives
from autocompress.targets import PRECISION_BITS, Target

MB = 2**20
FLOOR = ReleaseFloor()  # the score package's default release floor


@dataclass(frozen=True)
class Scores:
    """A trial's objectives, labelled metrics, constraints and the student's speech."""

    objectives: Objectives
    metrics: list[Metric]
    constraints: dict[str, float]
    speech: list[Speech]


def weight_bits(plan: CompressionPlan) -> dict[str, int]:
    """Group -> weight bits, for the groups the plan quantizes (others ship as floats)."""
    out = {}
    for g in MODULE_GROUPS:
        q = plan.group(g).quant
        bits = precision_bits(q.weights)
        if bits <= 8:
            out[g] = bits
        for op, prec in q.op_weights.items():
            if precision_bits(prec) <= 8:
                out.setdefault(g, precision_bits(prec))
    return out


def activation_precisions(plan: CompressionPlan, target: Target) -> dict[str, str]:
    """Group -> activation precision: the plan's float precision (int8 activations: the target's default)."""
    out = {}
    for g in MODULE_GROUPS:
        act = plan.group(g).quant.activations
        out[g] = act if act in ("fp32", "fp16", "bf16") else target.default_precision
    return out


@dataclass(frozen=True)
class QualityResult:
    """The student's speech on the held-out sentences and its quality report."""

    report: QualityReport
    speech: list[Speech]


def score_quality(student: Voice, plan: CompressionPlan, cache: TeacherCache) -> QualityResult:
    """Let the student (with its fake quantization: deployed numerics) speak and compare with the teacher."""
    style = None if _own_style(plan) else cache.style
    speech = [synthesize(student, cache.prompt, s, style) for s in cache.sentences]
    report = compare_audio(cache.reference, [s.wav.numpy() for s in speech], speech[0].sample_rate, FLOOR)
    return QualityResult(report, speech)


def score_student(
    student: Voice, plan: CompressionPlan, cache: TeacherCache, target: Target, device_label: str,
    teacher_distance: float, quality: QualityResult,
) -> Scores:
    """Combine the quality result with latency and memory of the *deployable* student.

    ``student`` must have its fake quantization stripped (weights hold the quantized values,
    no activation hooks), so that profiles count the deployed ops only.
    """
    report = quality.report
    q = report.get("quality")
    metrics = [*report.metrics, measured("teacher_distance", teacher_distance, "", device_label)]
    audio_s = float(np.mean([s.wav.numel() / s.sample_rate for s in cache.speech]))
    if target.measured:
        latency = _measured_latency(student, cache, device_label)
    else:
        latency = _projected_latency(student, plan, cache, target)
    metrics.append(latency)
    rtf = latency.value / 1e3 / max(audio_s, 1e-6)
    metrics.append(Metric("rtf", rtf, "x", latency.kind, latency.device, latency.note))
    memory = _projected_memory(student, plan, cache, target)
    metrics.extend(memory)
    constraints = {
        "memory_budget": memory[0].value / target.memory_budget_bytes - 1.0,
        "rtf_budget": rtf / target.rtf_budget - 1.0,
        "quality_floor": floor_violation(report, cache.reference.mean_mos),
    }
    objectives = Objectives(quality=q.value, latency_ms=latency.value, memory_mb=memory[0].value / MB)
    return Scores(objectives, metrics, constraints, quality.speech)


def _own_style(plan: CompressionPlan) -> bool:
    return not plan.group("ref_enc").is_identity


def floor_violation(report: QualityReport, teacher_mos: float, floor: ReleaseFloor = FLOOR) -> float:
    """The release floor as a constraint: relative MOS shortfall (<= 0 exactly when the floor holds)."""
    try:
        mos = report.get("distillmos").value
    except KeyError:
        return 1.0
    if math.isnan(mos):
        return 1.0
    threshold = floor.min_mos
    if not math.isnan(teacher_mos) and teacher_mos < floor.min_mos:
        threshold = min(floor.min_mos, teacher_mos - floor.max_drop)
    value = (threshold - mos) / threshold
    # Keep the sign identical to the score package's own decision.
    return min(value, 0.0) if report.passes_floor else max(value, 1e-6)


def _measured_latency(student: Voice, cache: TeacherCache, device_label: str) -> Metric:
    sentence = cache.sentences[0]
    timing = measure(lambda: synthesize(student, cache.prompt, sentence, cache.style), warmup=1, repeats=3)
    return measured("latency_ms", timing.median_ms, "ms", device_label, "one held-out sentence, end to end")


def _projected_latency(student: Voice, plan: CompressionPlan, cache: TeacherCache, target: Target) -> Metric:
    bits = weight_bits(plan)
    acts = activation_precisions(plan, target)
    prompt, sentence = cache.prompt, cache.sentences[0]
    n_codes = int(cache.speech[0].codes.numel())
    phones = torch.cat([prompt.phones, sentence.phones])[None]
    bert = torch.cat([prompt.bert, sentence.bert], dim=1)[None]
    prefix = phones.shape[1] + prompt.codes.numel()
    max_len = prefix + n_codes + 1
    gpt = student.gpt
    p_prefill = profile_module(
        gpt, lambda m, s: m.prefill(to_meta(phones), to_meta(bert), to_meta(prompt.codes[None]), max_len), prefix="gpt"
    )
    mid = prefix + n_codes // 2
    p_step = profile_module(
        gpt, lambda m, cache_: m.decode_step(torch.zeros(1, 1, dtype=torch.long, device="meta"), cache_, mid),
        setup=lambda m: _meta_cache(m, max_len, phones.shape[1], mid), prefix="gpt",
    )
    codes = cache.speech[0].codes
    p_sovits = profile_module(
        student.sovits,
        lambda m, s: _sovits_infer(m, to_meta(codes[None, None]), to_meta(sentence.phones[None]), to_meta(cache.style)),
    )
    t = project_latency(p_prefill, target, bits, acts).seconds
    t += n_codes * project_latency(p_step, target, bits, acts).seconds
    t += project_latency(p_sovits, target, bits, acts).seconds
    return projected("latency_ms", t * 1e3, "ms", target.name, f"one held-out sentence: prefill + {n_codes} steps + SoVITS")


def _meta_cache(gpt: Any, max_len: int, text_len: int, filled: int) -> Any:
    cache = gpt.new_cache(1, max_len, text_len)
    cache.length = filled
    return cache


def _sovits_infer(sv: Any, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor) -> torch.Tensor:
    m_p, _, y_mask = sv.infer_latent(codes, text, ge)
    z = sv.flow(m_p, y_mask, g=ge, reverse=True)
    return sv.dec(z * y_mask, g=ge)


def _projected_memory(student: Voice, plan: CompressionPlan, cache: TeacherCache, target: Target) -> list[Metric]:
    bits = weight_bits(plan)
    acts = activation_precisions(plan, target)
    w_gpt, n1 = deployed_weight_bytes(student.gpt, target, bits, acts, prefix="gpt")
    w_sv = 0.0
    notes = list(n1)
    for g in ("enc_p", "flow", "dec", "ref_enc"):
        w, n = deployed_weight_bytes(student.module(g), target, bits, acts, prefix=g)
        w_sv += w
        notes.extend(n)
    for name in ("ssl_proj", "quantizer"):
        w, _ = deployed_weight_bytes(getattr(student.sovits, name), target, None, "fp32", prefix=name)
        w_sv += w
    widths = [layer.self_attn.inner for layer in student.gpt.h.layers]
    kv = kv_cache_bytes(widths, target.max_seq_len, PRECISION_BITS[acts["gpt"]] / 8)
    act_bytes = PRECISION_BITS[acts["dec"]] // 8
    codes = cache.speech[0].codes
    peak = profile_module(
        student.sovits,
        lambda m, s: _sovits_infer(m, to_meta(codes[None, None]), to_meta(cache.sentences[0].phones[None]),
                                   to_meta(cache.style)),
    ).peak_activation_bytes(max(act_bytes, 1))
    proj = project_memory(target, w_gpt + w_sv, kv, float(peak), tuple(dict.fromkeys(notes)))
    return proj.metrics("memory")


__all__ = ["FLOOR", "QualityResult", "Scores", "activation_precisions", "floor_violation", "score_quality", "score_student", "weight_bits"]
