"""The one verb: ``compress(voice, plan) -> Voice``.

For every module group the plan's transforms run in a fixed order, each kind over all
groups before the next kind: students, then pruning (both rewrite ``(config, state dict)``
pairs), then the new models are built fresh from their configs and load the edited state,
then fake quantization is attached. The teacher is never modified, and the result never
shares a tensor with it. Transforms are looked up by config type in :data:`TRANSFORMS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autocompress.compress._build import build_group_module, build_model, model_config
from autocompress.compress._state import StateEditor
from autocompress.compress.fake_quant import add_fake_quant_
from autocompress.compress.importance import Calibration, ImportanceContext
from autocompress.compress.plan import CompressionPlan, GroupPlan, PruneConfig, QuantConfig, StudentConfig
from autocompress.compress.prune import prune_state, renumbered, structure_of
from autocompress.compress.students import student_state
from autocompress.exceptions import CompressionError, ConfigError
from autocompress.models.gpt_sovits.config import GPTConfig
from autocompress.models.gpt_sovits.voice import MODULE_GROUPS, Voice, group_modules

SOVITS_GROUPS = ("enc_p", "flow", "dec", "ref_enc")


@dataclass
class _Work:
    """One model being compressed: its config and state until it is built, then the model."""

    config: Any
    state: dict[str, torch.Tensor]
    device: torch.device
    model: nn.Module | None = None
    # group -> (config before its student, kept layers): prune ratios name the teacher's layers
    student_depth: dict[str, tuple[Any, list[list[int]]]] = field(default_factory=dict)

    def built(self) -> nn.Module:
        if self.model is None:
            self.model = build_model(self.config, self.state).to(self.device)
        return self.model


def importance_context_factory(
    group: str, calibration: Calibration | None
) -> Callable[[Any, StateEditor], ImportanceContext]:
    """What :func:`prune_state` / :func:`student_state` need to rank ``group`` on calibration data."""
    batches = list((calibration or {}).get(group, ()))

    def factory(config: Any, editor: StateEditor) -> ImportanceContext:
        return ImportanceContext(
            build=lambda: build_group_module(config, editor.state_dict(), group),
            batches=batches,
            prefix="" if group == "gpt" else group + ".",
        )

    return factory


# --------------------------------------------------------------------------- transforms


def _student(
    work: _Work, group: str, config: StudentConfig, plan: GroupPlan, calibration: Calibration | None
) -> None:
    factory = importance_context_factory(group, calibration)
    importance = plan.prune.importance
    before = work.config
    work.config, work.state, kept = student_state(work.config, work.state, group, config, importance, factory)
    if kept:
        work.student_depth[group] = (before, kept)


def _prune(
    work: _Work, group: str, config: PruneConfig, plan: GroupPlan, calibration: Calibration | None
) -> None:
    factory = importance_context_factory(group, calibration)
    if group in work.student_depth:
        before, kept = work.student_depth[group]
        config = renumbered(config, structure_of(group), before, work.config, kept, student=True)
    result = prune_state(work.config, work.state, group, config, factory)
    work.config, work.state = result.config, result.state


def _quantize(
    work: _Work, group: str, config: QuantConfig, plan: GroupPlan, calibration: Calibration | None
) -> None:
    for module in group_modules(work.built(), group):
        add_fake_quant_(module, config)


# Dispatch by transform-config type; the tuple order is the order transforms run in.
TRANSFORMS: dict[type, Callable[..., None]] = {
    StudentConfig: _student,
    PruneConfig: _prune,
    QuantConfig: _quantize,
}
_FIELDS = {StudentConfig: "student", PruneConfig: "prune", QuantConfig: "quant"}


# --------------------------------------------------------------------------- the verb


def compress(target: Any, plan: CompressionPlan, calibration: Calibration | None = None) -> Any:
    """Apply ``plan`` to a voice (or a bare GPT / SoVITS model) and return a new one.

    Args:
        target: a :class:`Voice`, a ``Text2SemanticGPT`` (group ``gpt``) or a
            ``SynthesizerTrn`` (groups ``enc_p``, ``flow``, ``dec``, ``ref_enc``). Plan entries
            for groups the target does not hold are ignored.
        plan: the compression plan.
        calibration: per group, calibration batches ``fn(group_module) -> Tensor``; needed
            when a group's importance is ``"activation"`` or ``"taylor"``.

    Returns:
        A new object of the same type as ``target``; the input is unchanged. Quantized
        groups carry fake quantization (see :func:`strip_fake_quant_`). Models are in eval mode.

    Raises:
        ConfigError: unknown groups, broken pruning limits, impossible student shapes.
        CompressionError: a transform cannot run (for example no calibration data).
    """
    unknown = sorted(set(plan.groups) - set(MODULE_GROUPS))
    if unknown:
        raise ConfigError(f"plan names unknown module groups {unknown}; expected a subset of {MODULE_GROUPS}")
    works = _works_of(target)
    groups_of = {"gpt": ("gpt",), "sovits": SOVITS_GROUPS}
    for kind, attr in _FIELDS.items():
        for name, work in works.items():
            for group in groups_of[name]:
                group_plan = plan.group(group)
                config = getattr(group_plan, attr)
                if not config.is_identity:
                    TRANSFORMS[type(config)](work, group, config, group_plan, calibration)
    built = {name: work.built() for name, work in works.items()}
    if isinstance(target, Voice):
        return Voice(gpt=built["gpt"], sovits=built["sovits"])
    return next(iter(built.values()))


def _works_of(target: Any) -> dict[str, _Work]:
    if isinstance(target, Voice):
        return {"gpt": _work_of(target.gpt), "sovits": _work_of(target.sovits)}
    if isinstance(target, nn.Module):
        config = model_config(target)
        return {"gpt" if isinstance(config, GPTConfig) else "sovits": _work_of(target)}
    raise CompressionError(
        f"compress takes a Voice, Text2SemanticGPT or SynthesizerTrn, got {type(target).__name__}"
    )


def _work_of(model: nn.Module) -> _Work:
    state = {k: v.detach() for k, v in model.state_dict().items()}
    device = next(model.parameters()).device
    return _Work(model_config(model), state, device)


def validate_plan(target: Any, plan: CompressionPlan) -> None:
    """Check ``plan`` against ``target`` without building models: every problem at once.

    Runs the structural transforms (students, pruning with L1 ranking) on state dicts, which
    is where the pruning limits and student shapes are checked.

    Raises:
        ConfigError: all problems found, one clause per group.
    """
    unknown = sorted(set(plan.groups) - set(MODULE_GROUPS))
    problems = [f"unknown module groups {unknown}"] if unknown else []
    for name, work in _works_of(target).items():
        for group in ("gpt",) if name == "gpt" else SOVITS_GROUPS:
            group_plan = plan.group(group)
            try:
                config, state, kept = student_state(work.config, work.state, group, group_plan.student)
                if not group_plan.prune.is_identity:
                    prune = PruneConfig(
                        group_plan.prune.ratio, group_plan.prune.layers, group_plan.prune.depth_ratio, "l1"
                    )
                    prune = renumbered(prune, structure_of(group), work.config, config, kept, student=True)
                    config = prune_state(config, state, group, prune).config
            except (ConfigError, CompressionError) as e:
                problems.append(str(e))
    if problems:
        raise ConfigError("plan does not fit the model: " + " | ".join(problems))


__all__ = ["SOVITS_GROUPS", "TRANSFORMS", "compress", "importance_context_factory", "validate_plan"]
