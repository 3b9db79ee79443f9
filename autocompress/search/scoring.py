"""Score a fine-tuned student for the study's target: quality, latency, memory, constraints.

- Quality (always measured here): the student speaks the held-out sentences (greedy GPT,
  noise-free SoVITS, the prompt's reference) and :func:`autocompress.score.compare_audio`
  compares it with the teacher's speech cached for the study: DistillMOS, speaker similarity,
  fidelity distances and the composite ``quality`` with its release floor.
- Latency and memory: :func:`autocompress.score.voice_cost_metrics` at the plan's deployed
  precisions for one standard utterance (:class:`~autocompress.score.voice_cost.
  UtteranceShape`: 60 phones, 75 prompt codes, 100 generated codes = 4 s of audio): projected
  for a datasheet target, measured on this machine for the ``cpu`` target.

The three objectives are ``quality`` (higher is better), ``latency_ms`` (the standard
utterance end to end) and ``memory_mb`` (projected for the target). Constraints (<= 0 is
satisfied): memory over the target's budget, real-time factor over its budget, and the release
floor, each relative to its bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from torch.nn.utils import parametrize

from autocompress.compress.fake_quant import calibrate_activations_
from autocompress.compress.plan import CompressionPlan
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.score.metric import Metric, measured
from autocompress.score.quality import QualityReport, ReleaseFloor, SentenceFigures, compare_audio
from autocompress.score.voice_cost import (
    UtteranceShape,
    latency_metric,
    precisions_from_plan,
    profile_voice,
    voice_cost_metrics,
)
from autocompress.search.cache import CALIBRATION_SENTENCES, TeacherCache
from autocompress.search.synth import Speech, synthesize
from autocompress.store import Objectives
from autocompress.targets import Target

MIB = 2**20  # the memory objective is in MiB
FLOOR = ReleaseFloor()  # the score package's default release floor (means and every sentence: see ReleaseFloor)
SHAPE = UtteranceShape()  # the standard utterance latency and memory are figured for


@dataclass(frozen=True)
class QualityResult:
    """The student's speech on the held-out sentences and its quality report."""

    report: QualityReport
    speech: list[Speech]


@dataclass(frozen=True)
class Scores:
    """A trial's objectives, labelled metrics, constraints and the student's speech."""

    objectives: Objectives
    metrics: list[Metric]
    constraints: dict[str, float]
    speech: list[Speech]


def score_quality(
    student: Voice, plan: CompressionPlan, cache: TeacherCache, symmetric_int8: bool = True
) -> QualityResult:
    """Let the student (with its fake quantization: deployed numerics) speak and compare with the teacher.

    Integer activations first get static ranges from the student speaking the sentences the
    export calibrates on (:data:`CALIBRATION_SENTENCES`), as the shipped static int8 graphs do:
    symmetric, or asymmetric uint8 for a target whose bundles use that form
    (``Target.symmetric_int8``).
    """
    style = None if not plan.group("ref_enc").is_identity else cache.style
    calibration = cache.sentences[:CALIBRATION_SENTENCES]
    # The weights stay fixed while the student speaks: each is rounded once, not at every decoding step.
    with parametrize.cached():
        calibrate_activations_(
            (student.gpt, student.sovits), lambda: [synthesize(student, cache.prompt, s, style) for s in calibration],
            symmetric=symmetric_int8,
        )
        speech = [synthesize(student, cache.prompt, s, style) for s in cache.sentences]
    audios = [s.wav.numpy() for s in speech]
    sr = speech[0].sample_rate
    return QualityResult(compare_audio(cache.reference, audios, sr, FLOOR), speech)


def score_student(
    student: Voice, plan: CompressionPlan, cache: TeacherCache, target: Target, device_label: str,
    teacher_distance: Mapping[str, float], quality: QualityResult,
) -> Scores:
    """Combine the quality result with latency and memory of the *deployable* student.

    ``student`` must have its fake quantization stripped (weights hold the quantized values,
    no activation hooks), so that profiles count the deployed ops only.
    """
    report = quality.report
    bits, acts = precisions_from_plan(plan)
    costs = voice_cost_metrics(student, target, bits, acts, profile=profile_voice(student, SHAPE))
    by_name = {m.name: m for m in costs}
    rtf, memory = by_name["rtf"], by_name["memory_bytes"]
    latency = latency_metric(rtf, SHAPE)
    distances = [  # per group: each its own scale (KL, latent L2, weighted mel L1), never summed
        measured(f"teacher_distance_{g}", d, "", device_label, "held-out items, after fine-tuning")
        for g, d in sorted(teacher_distance.items())
    ]
    metrics = [*report.metrics, *distances, latency, *costs]
    constraints = {
        "memory_budget": memory.value / target.memory_budget_bytes - 1.0,
        "rtf_budget": rtf.value / target.rtf_budget - 1.0,
        "quality_floor": floor_violation(report, cache.reference.mean_mos),
    }
    objectives = Objectives(quality=report.get("quality").value, latency_ms=latency.value, memory_mb=memory.value / MIB)
    return Scores(objectives, metrics, constraints, quality.speech)


def floor_violation(report: QualityReport, teacher_mos: float, floor: ReleaseFloor = FLOOR) -> float:
    """The release floor as a constraint: the largest relative shortfall of mean MOS, mean speaker
    cosine and the worst sentence (<= 0 exactly when the floor holds)."""
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
    speaker = next((m.value for m in report.metrics if m.name == "speaker_cos"), None)
    if speaker is not None and floor.min_speaker_cos > 0:
        shortfall = (floor.min_speaker_cos - speaker) / floor.min_speaker_cos
        value = max(value, shortfall if not math.isnan(shortfall) else 1.0)
    value = max([value, *(_sentence_shortfall(s, floor) for s in report.sentences)])
    # Keep the sign identical to the score package's own decision.
    return min(value, 0.0) if report.passes_floor else max(value, 1e-6)


def _sentence_shortfall(s: SentenceFigures, floor: ReleaseFloor) -> float:
    """The largest relative shortfall of one sentence against the per-sentence floors, at most 1
    (a silent sentence: 1)."""
    if s.silent:
        return 1.0
    r = s.length_ratio
    parts = [r / floor.max_length_ratio - 1.0, floor.min_length_ratio / r - 1.0 if r > 0 else 1.0]
    if s.speaker_cos is not None and floor.min_sentence_speaker_cos > 0:
        parts.append((floor.min_sentence_speaker_cos - s.speaker_cos) / floor.min_sentence_speaker_cos)
    if s.mos is not None:
        mos_floor = floor.sentence_mos_floor(s.teacher_mos)
        parts.append((mos_floor - s.mos) / mos_floor if mos_floor > 0 else -1.0)
    return min(1.0 if any(math.isnan(x) for x in parts) else max(parts), 1.0)


__all__ = ["FLOOR", "QualityResult", "SHAPE", "Scores", "floor_violation", "score_quality", "score_student"]
