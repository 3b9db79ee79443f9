"""Compression toolkit: plans, structured pruning, fake quantization, students, KD losses.

The one verb is :func:`compress` (``compress(voice, plan, calibration=None) -> Voice``);
a :class:`CompressionPlan` says, per module group, what to do.
"""

from __future__ import annotations

from autocompress.compress.apply import TRANSFORMS, compress, validate_plan
from autocompress.compress.calibration import CalibrationExample, voice_calibration
from autocompress.compress.deploy import (
    deployable_on,
    deployable_targets,
    deployment_problems,
    fallback_precision,
    with_deployable_precisions,
)
from autocompress.compress.fake_quant import (
    FakeQuantWeight,
    add_fake_quant_,
    calibrate_activations_,
    fake_quantize,
    fake_quantize_blocks,
    has_fake_quant,
    strip_fake_quant_,
)
from autocompress.compress.importance import Calibration, CalibrationBatch
from autocompress.compress.losses import (
    GPTDistillConfig,
    SoVITSDistillConfig,
    SoVITSDistillLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    gpt_kd_loss,
    latent_matching_loss,
    mel_l1_loss,
    sovits_kd_loss,
)
from autocompress.compress.lowp import Int8WeightOnlyLinear, cast_, int8_weight_only_, lower_precision_
from autocompress.compress.plan import (
    ACTIVATION_PRECISIONS,
    IMPORTANCE_METHODS,
    MAX_LAYER_PRUNE,
    MAX_MODULE_PRUNE,
    MIN_CHANNELS,
    PLAN_KINDS,
    WEIGHT_PRECISIONS,
    CompressionPlan,
    GroupPlan,
    PruneConfig,
    QuantConfig,
    StudentConfig,
    precision_bits,
    weight_precision_for_bits,
)
from autocompress.compress.presets import (
    PRESETS,
    int8_everywhere,
    preset,
    seed_recipe,
    teacher_bf16,
    teacher_fp16,
    teacher_fp32,
)
from autocompress.compress.prune import PruneResult, prunable_units, prune_state
from autocompress.compress._state import weight_norm_parts
from autocompress.compress.students import make_student, student_state

__all__ = [
    "ACTIVATION_PRECISIONS",
    "add_fake_quant_",
    "calibrate_activations_",
    "Calibration",
    "CalibrationBatch",
    "CalibrationExample",
    "cast_",
    "compress",
    "CompressionPlan",
    "deployable_on",
    "deployable_targets",
    "deployment_problems",
    "discriminator_loss",
    "fake_quantize",
    "fake_quantize_blocks",
    "FakeQuantWeight",
    "fallback_precision",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "gpt_kd_loss",
    "GPTDistillConfig",
    "GroupPlan",
    "has_fake_quant",
    "IMPORTANCE_METHODS",
    "int8_everywhere",
    "int8_weight_only_",
    "Int8WeightOnlyLinear",
    "latent_matching_loss",
    "lower_precision_",
    "make_student",
    "MAX_LAYER_PRUNE",
    "MAX_MODULE_PRUNE",
    "mel_l1_loss",
    "MIN_CHANNELS",
    "PLAN_KINDS",
    "precision_bits",
    "preset",
    "PRESETS",
    "prunable_units",
    "prune_state",
    "PruneConfig",
    "PruneResult",
    "QuantConfig",
    "seed_recipe",
    "sovits_kd_loss",
    "SoVITSDistillConfig",
    "SoVITSDistillLoss",
    "strip_fake_quant_",
    "student_state",
    "StudentConfig",
    "teacher_bf16",
    "teacher_fp16",
    "teacher_fp32",
    "TRANSFORMS",
    "validate_plan",
    "voice_calibration",
    "weight_norm_parts",
    "weight_precision_for_bits",
    "WEIGHT_PRECISIONS",
    "with_deployable_precisions",
]
