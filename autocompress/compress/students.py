"""Distillation students: a narrower / shallower model of the same architecture.

A student is a plain ``Text2SemanticGPT`` or ``SynthesizerTrn`` built from a smaller
config, so our loader reads it back; where the shape is uniform (upstream's own config can
express it: ``config.is_upstream_expressible``) it also saves in upstream's format. It is
initialised from the teacher by keeping the teacher's most important layers and channels
(see :mod:`autocompress.compress.importance`), which is a starting point for knowledge
distillation, not an equivalent model. No pruning limits apply to students.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from autocompress.compress._build import build_model, model_config
from autocompress.compress._engine import ContextFactory, naming_group, shrink_depth, shrink_width
from autocompress.compress._state import StateEditor
from autocompress.compress.plan import StudentConfig
from autocompress.compress.prune import structure_of


def student_state(
    config: Any,
    state: Mapping[str, Tensor],
    group: str,
    student: StudentConfig,
    importance: str = "l1",
    make_context: ContextFactory | None = None,
) -> tuple[Any, dict[str, Tensor], list[list[int]]]:
    """Shrink one group of ``(config, state)`` into a student; inputs are not modified.

    Returns:
        (student config, student state dict, per depth pool the teacher indices of the layers
        kept; empty when the depth is unchanged).
    """
    if student.is_identity:
        return config, dict(state), []
    structure = structure_of(group)
    editor = StateEditor(state)
    factory = make_context or (lambda c, e: None)
    kept: list[list[int]] = []
    with naming_group(group):
        if student.depth_mult < 1.0:
            keep_counts = structure.student_depth_keep(config, student)
            config, kept = shrink_depth(structure, config, editor, keep_counts, True, importance, factory)
        if student.width_mult < 1.0:
            sets, sizes = structure.student_sets(config, student)
            shrink_width(config, editor, sets, sizes, importance, factory)
            config = structure.resize_student(config, sizes, editor)
    return config, editor.state_dict(), kept


def make_student(teacher: nn.Module, group: str, student: StudentConfig, importance: str = "l1") -> nn.Module:
    """A new student model of one group of ``teacher`` (GPT or SoVITS), initialised from it."""
    config, state, _ = student_state(model_config(teacher), teacher.state_dict(), group, student, importance)
    return build_model(config, state)


__all__ = ["make_student", "student_state"]
