"""Which plan precisions a hardware target can ship, and the nearest ones it can.

A plan's precisions are per module group and op kind (``linear``, ``conv``,
``conv_transpose``); a :class:`~autocompress.targets.Target` lists deployable precisions per
op kind of its own (``matmul``, ``conv``). Bit widths other than 8 and 4 (and int4
convolutions on most targets, fp8 nowhere here) exist only in simulation: they are never
deployable, and the fallback picks the nearest deployable precision that is at least as
wide, keeping integer grids before floats.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from autocompress.compress.plan import CompressionPlan, QuantConfig, precision_bits
from autocompress.exceptions import ConfigError

# The op kinds each GPT-SoVITS module group is made of (embeddings are not quantized); the first
# is the one a group's ``weights`` follow after a fallback. A v2Pro enc_p also runs a Linear (ge_to512).
GROUP_OP_KINDS: dict[str, tuple[str, ...]] = {
    "gpt": ("linear",),
    "enc_p": ("conv", "linear"),
    "flow": ("conv",),
    "dec": ("conv", "conv_transpose"),
    "ref_enc": ("linear", "conv"),
}
# Our op kinds -> the target files' op kinds.
TARGET_OP_KIND = {"linear": "matmul", "conv": "conv", "conv_transpose": "conv"}
_FLOATS = ("fp16", "bf16", "fp32")


def _target(target: Any) -> Any:
    if isinstance(target, str):
        from autocompress.targets import load_target

        return load_target(target)
    if not hasattr(target, "can_deploy"):
        raise ConfigError(f"expected a Target or a target name, got {type(target).__name__}")
    return target


def fallback_precision(precision: str, op_kind: str, target: Any) -> str:
    """The precision ``op_kind`` ships in on ``target`` when the plan asks for ``precision``.

    The precision itself when deployable; otherwise, for an integer width, the narrowest
    deployable integer width that is wider, else fp16, bf16, fp32; for fp16 / bf16, fp32
    (the other 16-bit float rounds differently, so it is not a substitute).

    Args:
        precision: a weight or activation precision (``"int3"``, ``"fp16"``...).
        op_kind: ``"linear"``, ``"conv"`` or ``"conv_transpose"``.
        target: a ``Target`` or a target name.
    """
    target = _target(target)
    kind = TARGET_OP_KIND[op_kind]
    if target.can_deploy(precision, kind):
        return precision
    if precision.startswith("int"):
        bits = precision_bits(precision)
        wider = [f"int{b}" for b in range(bits + 1, 9)]
        candidates = wider + list(_FLOATS)
    else:
        candidates = ["fp32"]
    for candidate in candidates:
        if target.can_deploy(candidate, kind):
            return candidate
    return "fp32"


def deployment_problems(plan: CompressionPlan, target: Any) -> list[str]:
    """Every (group, op kind, precision) of ``plan`` that ``target`` cannot ship, as messages;
    an op kind counts at the precision the export stores it at (an override below a float group
    ships with the group)."""
    from autocompress.compress.fake_quant import scored_weight_precision

    target = _target(target)
    problems = []
    for group, group_plan in sorted(plan.groups.items()):
        quant = group_plan.quant
        for op_kind in GROUP_OP_KINDS.get(group, ()):
            kind = TARGET_OP_KIND[op_kind]
            weights = scored_weight_precision(quant.weight_precision(op_kind), quant.weights)
            if not target.can_deploy(weights, kind):
                problems.append(
                    f"{group}: {weights} {op_kind} weights are not deployable on {target.name} "
                    f"({kind}: {', '.join(target.deployable.get(kind, ()))})"
                )
            if quant.activations != "fp32" and not target.can_deploy(quant.activations, kind):
                problems.append(
                    f"{group}: {quant.activations} {op_kind} activations are not deployable on {target.name}"
                )
    return problems


def deployable_on(plan: CompressionPlan, target: Any) -> bool:
    """True when every precision of ``plan`` can ship on ``target``."""
    return not deployment_problems(plan, target)


def deployable_targets(plan: CompressionPlan) -> dict[str, bool]:
    """For every shipped target file, whether ``plan`` can ship on it as is."""
    from autocompress.targets import list_targets, load_target

    return {name: deployable_on(plan, load_target(name)) for name in list_targets()}


def with_deployable_precisions(plan: CompressionPlan, target: Any) -> CompressionPlan:
    """A copy of ``plan`` with every precision replaced by its :func:`fallback_precision`.

    A group whose integer weights fall back to a 16-bit float ships as a graph of that float,
    activations included: where the plan left its activations at fp32, the copy says that float.
    """
    target = _target(target)
    groups = {}
    for group, group_plan in plan.groups.items():
        quant = group_plan.quant
        kinds = GROUP_OP_KINDS.get(group, ())
        op_weights = {k: fallback_precision(quant.weight_precision(k), k, target) for k in kinds}
        weights = op_weights[kinds[0]] if kinds else quant.weights
        activations = quant.activations
        if activations != "fp32":  # one precision for the whole group: the fallback all its op kinds share
            fallbacks = {fallback_precision(activations, k, target) for k in kinds}
            activations = fallbacks.pop() if len(fallbacks) == 1 else "fp32"
        elif quant.weights.startswith("int") and weights in ("fp16", "bf16"):
            # the export's 16-bit graph (export.precision.request_from_plan), where every op kind runs it
            fallbacks = {fallback_precision(weights, k, target) for k in kinds}
            activations = fallbacks.pop() if len(fallbacks) == 1 else "fp32"
        new_quant = QuantConfig(
            weights=weights,
            activations=activations,
            op_weights={k: p for k, p in op_weights.items() if p != weights},
        )
        groups[group] = dataclasses.replace(group_plan, quant=new_quant)
    return dataclasses.replace(plan, groups=groups)


__all__ = [
    "GROUP_OP_KINDS",
    "TARGET_OP_KIND",
    "deployable_on",
    "deployable_targets",
    "deployment_problems",
    "fallback_precision",
    "with_deployable_precisions",
]
