"""Compression toolkit: plans, structured pruning, fake quantization, students, KD losses.

The one verb is :func:`compress` (``compress(voice, plan, calibration=None) -> Voice``);
a :class:`CompressionPlan` says, per module group, what to do.
"""

from __future__ import annotations

from autocompress.compress.apply import TRANSFORMS, compress, validate_plan
from autocompress.compress.fake_quant import (
    FakeQuantWeight,
    add_fake_quant_,
    fake_quantize,
    has_fake_quant,
    strip_fake_quant_,
)
from autocompress.compress.importance import Calibration, CalibrationBatch
from autocompress.compress.lowp import Int8WeightOnlyLinear, cast_, int8_weight_only_
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
from autocompress.compress.prune import PruneResult, prunable_units, prune_state
from autocompress.compress.students import make_student, student_state

__all__ = [
    "ACTIVATION_PRECISIONS",
    "Calibration",
    "CalibrationBatch",
    "CompressionPlan",
    "FakeQuantWeight",
    "GroupPlan",
    "IMPORTANCE_METHODS",
    "Int8WeightOnlyLinear",
    "MAX_LAYER_PRUNE",
    "MAX_MODULE_PRUNE",
    "MIN_CHANNELS",
    "PLAN_KINDS",
    "PruneConfig",
    "PruneResult",
    "QuantConfig",
    "StudentConfig",
    "TRANSFORMS",
    "WEIGHT_PRECISIONS",
    "add_fake_quant_",
    "cast_",
    "compress",
    "fake_quantize",
    "has_fake_quant",
    "int8_weight_only_",
    "make_student",
    "prunable_units",
    "precision_bits",
    "prune_state",
    "strip_fake_quant_",
    "student_state",
    "validate_plan",
    "weight_precision_for_bits",
]
