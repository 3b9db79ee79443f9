"""Which plan precisions a hardware target can ship, and the nearest ones it can.

A plan's precisions are per module group and op kind (``linear``, ``conv``,
``conv_transpose``); a :class:`~autocompress.targets.Target` lists deployable precisions per
op kind of its own (``matmul``, ``conv``). Bit widths other than 8 and 4 (and int4
convolutions on most targets, fp8 nowhere here) exist only in simulation: they are never
deployable, and the fallback picks the nearest deployable precision that is at least as
wide, keeping integer grids before floats. bf16 ships as fp16 (the export writes no bf16), so
it is judged, and replaced, as the fp16 it ships.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from autocompress.compress.plan import CompressionPlan, QuantConfig, graph_float, precision_bits
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
_FLOATS = ("fp16", "fp32")  # the float rungs the export writes


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
    deployable integer width that is wider, else fp16, fp32; for fp16, fp32 (bf16 rounds
    differently, so it is not a substitute). bf16 is the fp16 the export stores it as: fp16
    where the target runs fp16, else fp32.

    Args:
        precision: a weight or activation precision (``"int3"``, ``"fp16"``...).
        op_kind: ``"linear"``, ``"conv"`` or ``"conv_transpose"``.
        target: a ``Target`` or a target name.
    """
    target = _target(target)
    kind = TARGET_OP_KIND[op_kind]
    if precision == "bf16":  # the export writes it as fp16: the target must run that
        precision = "fp16"
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
    an op kind counts at the precisions the export stores and runs it at (an override below a
    float group ships with the group, bf16 as fp16; its inputs as its graph runs them)."""
    from autocompress.compress.fake_quant import layer_activations, scored_weight_precision

    target = _target(target)
    problems = []
    for group, group_plan in sorted(plan.groups.items()):
        quant = group_plan.quant
        for op_kind in GROUP_OP_KINDS.get(group, ()):
            kind = TARGET_OP_KIND[op_kind]
            weights = scored_weight_precision(quant.weight_precision(op_kind), quant.weights)
            if not target.can_deploy(weights, kind):
                stored = " (bf16 ships as fp16)" if quant.weight_precision(op_kind) == "bf16" else ""
                problems.append(
                    f"{group}: {weights} {op_kind} weights{stored} are not deployable on {target.name} "
                    f"({kind}: {', '.join(target.deployable.get(kind, ()))})"
                )
            activations = layer_activations(quant.activations, quant.weight_precision(op_kind), quant.weights)
            if activations != "fp32" and not target.can_deploy(activations, kind):
                problems.append(f"{group}: {activations} {op_kind} activations are not deployable on {target.name}")
            floats = graph_float(quant.weights, quant.activations)  # the graph's float parts
            if floats != "fp32" and activations != floats and not target.can_deploy(floats, kind):
                problems.append(f"{group}: {floats} float parts ({op_kind} graph) are not deployable on {target.name}")
    return problems


def deployable_on(plan: CompressionPlan, target: Any) -> bool:
    """True when every precision of ``plan`` can ship on ``target``."""
    return not deployment_problems(plan, target)


def deployable_targets(plan: CompressionPlan) -> dict[str, bool]:
    """For every shipped target file, whether ``plan`` can ship on it as is."""
    from autocompress.targets import list_targets, load_target

    return {name: deployable_on(plan, load_target(name)) for name in list_targets()}


def with_deployable_precisions(plan: CompressionPlan, target: Any) -> CompressionPlan:
    """A copy of ``plan`` with every precision replaced by its :func:`fallback_precision`, and
    each group's activations by those its exported graph runs
    (:func:`~autocompress.compress.fake_quant.layer_activations`), so that two plans that ship
    the same bundle are one plan (bf16 as fp16; fp16 activations in an int4 or fp32 group as the
    fp32 the graph runs).

    A group whose integer weights fall back to fp16 ships as an fp16 graph, activations
    included: where the plan left its activations at fp32, the copy says fp16. A group kept at
    integer weights ships its float parts (KV cache, norms, attention, weight-only layers' math)
    in fp16 where the target runs fp16 (activations ``"fp16"``), else in fp32 (``"int8"`` for
    W8A8 weights, ``"fp32"`` for int4 / int2): the plan's own activations do not choose it.
    """
    from autocompress.compress.fake_quant import layer_activations

    target = _target(target)
    groups = {}
    for group, group_plan in plan.groups.items():
        quant = group_plan.quant
        kinds = GROUP_OP_KINDS.get(group, ())
        op_weights = {k: fallback_precision(quant.weight_precision(k), k, target) for k in kinds}
        weights = op_weights[kinds[0]] if kinds else quant.weights
        if kinds and weights.startswith("int"):
            # an integer group's float parts: fp16 where the target runs fp16 (int8 W8A8 layers
            # read int8 either way), else fp32 ("int8" for a W8A8 group, as its layers' inputs)
            half = all(target.can_deploy("fp16", TARGET_OP_KIND[k]) for k in kinds)
            activations = "fp16" if half else layer_activations("fp32", weights)
        else:  # a float group's graph runs its weights' float
            activations = layer_activations(quant.activations, weights) if kinds else quant.activations
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
