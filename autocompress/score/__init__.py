"""Scoring: quality against the teacher, latency and memory, measured here or projected.

Every figure leaves this package as a :class:`Metric` labelled ``measured`` (with the device
that ran it) or ``projected`` (with the hardware target it stands for). Heavy scorers (MOS
models, the speaker encoder) load on first use and are cached per process.

Names are imported from their modules on first access, so ``import autocompress.score`` (and
a memory-measuring subprocess) does not load torch until something needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autocompress._lazy import lazy_attributes

if TYPE_CHECKING:
    from autocompress.score.fidelity import ANALYSIS_SR
    from autocompress.score.fidelity import dtw_path
    from autocompress.score.fidelity import fidelity_metrics
    from autocompress.score.fidelity import log_mel_l1
    from autocompress.score.fidelity import mel_cepstral_distortion
    from autocompress.score.fidelity import mrstft_distance
    from autocompress.score.intelligibility import stoi
    from autocompress.score.memory import MemoryProjection
    from autocompress.score.memory import deployed_weight_bytes
    from autocompress.score.memory import gpu_memory_metrics
    from autocompress.score.memory import kv_cache_bytes
    from autocompress.score.memory import nvml_process_bytes
    from autocompress.score.memory import peak_rss_subprocess
    from autocompress.score.memory import project_memory
    from autocompress.score.metric import MEASURED
    from autocompress.score.metric import PROJECTED
    from autocompress.score.metric import Metric
    from autocompress.score.metric import format_metric
    from autocompress.score.metric import host_device
    from autocompress.score.metric import measured
    from autocompress.score.metric import projected
    from autocompress.score.mos import AudioScorer
    from autocompress.score.mos import get_scorer
    from autocompress.score.precision import Deployed
    from autocompress.score.precision import deploy_weight
    from autocompress.score.precision import weight_bits_for
    from autocompress.score.profile import ModelProfile
    from autocompress.score.profile import OpRecord
    from autocompress.score.profile import profile_module
    from autocompress.score.profile import to_meta
    from autocompress.score.projection import Projection
    from autocompress.score.projection import project_latency
    from autocompress.score.quality import QualityReport
    from autocompress.score.quality import ReleaseFloor
    from autocompress.score.quality import TeacherReference
    from autocompress.score.quality import build_reference
    from autocompress.score.quality import compare_audio
    from autocompress.score.quality import composite_quality
    from autocompress.score.quality import speaker_similarity
    from autocompress.score.timing import Timing
    from autocompress.score.timing import measure
    from autocompress.score.tokens import gpt_agreement
    from autocompress.score.tokens import greedy_tokens
    from autocompress.score.tokens import teacher_forced_kl
    from autocompress.score.tokens import token_agreement
    from autocompress.score.tracker import LiveTensorTracker
    from autocompress.score.tracker import activation_peak_bytes
    from autocompress.score.voice_cost import UtteranceShape
    from autocompress.score.voice_cost import VoiceProfile
    from autocompress.score.voice_cost import measure_gpt
    from autocompress.score.voice_cost import measure_rtf
    from autocompress.score.voice_cost import measure_sovits
    from autocompress.score.voice_cost import measure_voice_memory
    from autocompress.score.voice_cost import run_shape
    from autocompress.score.voice_cost import voice_cost_metrics
    from autocompress.score.voice_cost import dummy_utterances
    from autocompress.score.voice_cost import precisions_from_plan
    from autocompress.score.voice_cost import profile_voice
    from autocompress.score.voice_cost import project_voice
    from autocompress.score.voice_cost import project_voice_memory
    from autocompress.score.voice_cost import latency_metric
    from autocompress.score.voice_cost import projected_plan_metrics

_LOCATIONS = {
    "ANALYSIS_SR": "autocompress.score.fidelity",
    "dtw_path": "autocompress.score.fidelity",
    "fidelity_metrics": "autocompress.score.fidelity",
    "log_mel_l1": "autocompress.score.fidelity",
    "mel_cepstral_distortion": "autocompress.score.fidelity",
    "mrstft_distance": "autocompress.score.fidelity",
    "stoi": "autocompress.score.intelligibility",
    "MemoryProjection": "autocompress.score.memory",
    "deployed_weight_bytes": "autocompress.score.memory",
    "gpu_memory_metrics": "autocompress.score.memory",
    "kv_cache_bytes": "autocompress.score.memory",
    "nvml_process_bytes": "autocompress.score.memory",
    "peak_rss_subprocess": "autocompress.score.memory",
    "project_memory": "autocompress.score.memory",
    "MEASURED": "autocompress.score.metric",
    "PROJECTED": "autocompress.score.metric",
    "Metric": "autocompress.score.metric",
    "format_metric": "autocompress.score.metric",
    "host_device": "autocompress.score.metric",
    "measured": "autocompress.score.metric",
    "projected": "autocompress.score.metric",
    "AudioScorer": "autocompress.score.mos",
    "get_scorer": "autocompress.score.mos",
    "Deployed": "autocompress.score.precision",
    "deploy_weight": "autocompress.score.precision",
    "weight_bits_for": "autocompress.score.precision",
    "ModelProfile": "autocompress.score.profile",
    "OpRecord": "autocompress.score.profile",
    "profile_module": "autocompress.score.profile",
    "to_meta": "autocompress.score.profile",
    "Projection": "autocompress.score.projection",
    "project_latency": "autocompress.score.projection",
    "QualityReport": "autocompress.score.quality",
    "ReleaseFloor": "autocompress.score.quality",
    "TeacherReference": "autocompress.score.quality",
    "build_reference": "autocompress.score.quality",
    "compare_audio": "autocompress.score.quality",
    "composite_quality": "autocompress.score.quality",
    "speaker_similarity": "autocompress.score.quality",
    "Timing": "autocompress.score.timing",
    "measure": "autocompress.score.timing",
    "gpt_agreement": "autocompress.score.tokens",
    "greedy_tokens": "autocompress.score.tokens",
    "teacher_forced_kl": "autocompress.score.tokens",
    "token_agreement": "autocompress.score.tokens",
    "LiveTensorTracker": "autocompress.score.tracker",
    "activation_peak_bytes": "autocompress.score.tracker",
    "UtteranceShape": "autocompress.score.voice_cost",
    "VoiceProfile": "autocompress.score.voice_cost",
    "measure_gpt": "autocompress.score.voice_cost",
    "measure_rtf": "autocompress.score.voice_cost",
    "measure_sovits": "autocompress.score.voice_cost",
    "measure_voice_memory": "autocompress.score.voice_cost",
    "run_shape": "autocompress.score.voice_cost",
    "voice_cost_metrics": "autocompress.score.voice_cost",
    "dummy_utterances": "autocompress.score.voice_cost",
    "precisions_from_plan": "autocompress.score.voice_cost",
    "profile_voice": "autocompress.score.voice_cost",
    "project_voice": "autocompress.score.voice_cost",
    "project_voice_memory": "autocompress.score.voice_cost",
    "latency_metric": "autocompress.score.voice_cost",
    "projected_plan_metrics": "autocompress.score.voice_cost",
}


__getattr__ = lazy_attributes(__name__, _LOCATIONS)


__all__ = [
    "ANALYSIS_SR",
    "AudioScorer",
    "Deployed",
    "LiveTensorTracker",
    "MEASURED",
    "MemoryProjection",
    "Metric",
    "ModelProfile",
    "OpRecord",
    "PROJECTED",
    "Projection",
    "QualityReport",
    "ReleaseFloor",
    "TeacherReference",
    "Timing",
    "UtteranceShape",
    "VoiceProfile",
    "activation_peak_bytes",
    "build_reference",
    "compare_audio",
    "composite_quality",
    "deploy_weight",
    "deployed_weight_bytes",
    "dtw_path",
    "dummy_utterances",
    "fidelity_metrics",
    "format_metric",
    "get_scorer",
    "gpt_agreement",
    "gpu_memory_metrics",
    "greedy_tokens",
    "host_device",
    "kv_cache_bytes",
    "latency_metric",
    "log_mel_l1",
    "measure",
    "measure_gpt",
    "measure_rtf",
    "measure_sovits",
    "measure_voice_memory",
    "measured",
    "mel_cepstral_distortion",
    "mrstft_distance",
    "nvml_process_bytes",
    "peak_rss_subprocess",
    "precisions_from_plan",
    "profile_module",
    "profile_voice",
    "project_latency",
    "project_memory",
    "project_voice",
    "project_voice_memory",
    "projected",
    "projected_plan_metrics",
    "run_shape",
    "speaker_similarity",
    "stoi",
    "teacher_forced_kl",
    "to_meta",
    "token_agreement",
    "voice_cost_metrics",
    "weight_bits_for",
]
