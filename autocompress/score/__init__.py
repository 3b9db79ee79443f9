"""Scoring: quality against the teacher, latency and memory, measured here or projected.

Every figure leaves this package as a :class:`Metric` labelled ``measured`` (with the device
that ran it) or ``projected`` (with the hardware target it stands for). Heavy scorers (MOS
models, the speaker encoder) load on first use and are cached per process.
"""

from __future__ import annotations

from autocompress.score.fidelity import ANALYSIS_SR
from autocompress.score.fidelity import dtw_path
from autocompress.score.fidelity import fidelity_metrics
from autocompress.score.fidelity import log_mel_l1
from autocompress.score.fidelity import mel_cepstral_distortion
from autocompress.score.fidelity import mrstft_distance
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
from autocompress.score.voice_cost import precisions_from_plan
from autocompress.score.voice_cost import profile_voice
from autocompress.score.voice_cost import project_voice
from autocompress.score.voice_cost import project_voice_memory

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
    "fidelity_metrics",
    "format_metric",
    "get_scorer",
    "gpt_agreement",
    "gpu_memory_metrics",
    "greedy_tokens",
    "host_device",
    "kv_cache_bytes",
    "log_mel_l1",
    "measure",
    "measure_gpt",
    "measure_rtf",
    "measure_sovits",
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
    "teacher_forced_kl",
    "to_meta",
    "token_agreement",
    "weight_bits_for",
]
