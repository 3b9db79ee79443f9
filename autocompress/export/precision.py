"""Which precision each module group is stored in: the plan's wish, then the target's limits.

The export ladder is ``int2 < int4 < int8 < fp16 < fp32`` (:data:`PRECISIONS`). A plan's
weight precision maps onto it by rounding up (int3 -> int4, int5..int7 -> int8, bf16 -> fp16:
onnxruntime's converter writes fp16). A target names the precisions it can run per op kind
(``matmul``, ``conv``); a rung the target cannot run for every op kind in the group's graphs is
skipped. fp32 is always allowed. The parity check then walks the remaining rungs upward.

An integer rung's graph also has float parts (KV cache, norms, attention, activations between
layers, dequantized math): they run in the float :func:`~autocompress.compress.plan.graph_float`
gives the plan's weights and activations (:attr:`GroupRequest.floats`): fp16 where the plan's
activations are fp16 or bf16 (what ``with_deployable_precisions`` writes for a target that
runs fp16), else fp32 (the ``cpu`` target's ``int8`` / ``fp32`` activations). A float rung's
graph runs its own float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import onnx

from autocompress.compress.plan import graph_float, shipped_rung
from autocompress.exceptions import ConfigError
from autocompress.runtime.manifest import PRECISIONS

# Plan op kinds (compress.plan.OP_KINDS) -> the ONNX op types carrying their weights.
PLAN_OP_TYPES: dict[str, tuple[str, ...]] = {
    "linear": ("MatMul", "Gemm"),
    "conv": ("Conv",),
    "conv_transpose": ("ConvTranspose",),
}
# ONNX op types -> the op kind a target lists deployable precisions for.
TARGET_OP_KIND: dict[str, str] = {"MatMul": "matmul", "Gemm": "matmul", "Conv": "conv", "ConvTranspose": "conv"}

# Why static QDQ rather than dynamic int8 on CPU (recorded with every CPU int8 module).
CPU_INT8_NOTE = (
    "int8 as static QDQ with u8 activations: onnxruntime's dynamic int8 runs Conv with s8 "
    "weights as ConvInteger, about 3x slower than fp32 (measured on an x86 CPU)"
)


def to_export_precision(precision: str) -> tuple[str, str]:
    """Map a plan weight precision onto the export ladder; returns (rung, note or "")."""
    if precision in PRECISIONS:
        return precision, ""
    if precision == "bf16":
        return shipped_rung(precision), "bf16 stored as fp16 (onnxruntime's converter writes fp16)"
    if precision.startswith("int") and precision[3:].isdigit() and int(precision[3:]) <= 8:
        rung = shipped_rung(f"int{max(int(precision[3:]), 2)}")
        return rung, f"{precision} stored as {rung} (the next rung up)"
    raise ConfigError(f"cannot store weight precision {precision!r}; expected fp32, fp16, bf16 or int2..int8")


@dataclass(frozen=True)
class GroupRequest:
    """What the plan asks for one module group.

    Attributes:
        precision: rung on the export ladder.
        keep_op_types: ONNX op types kept at fp32 because the plan gives them a higher
            precision than the group's.
        notes: how the plan's precisions were mapped.
        int8_op_types: ONNX op types stored as int8 in a group stored at int4/int2 (the plan's
            override, e.g. convolutions a target runs at int8 but not at int4).
        floats: ``fp16`` or ``fp32``, the float type of the graph's float parts at an integer
            rung (int8 / int4 / int2); a float rung's graph runs its own (:meth:`floats_at`).
    """

    precision: str
    keep_op_types: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    int8_op_types: tuple[str, ...] = ()
    floats: str = "fp32"

    def floats_at(self, rung: str) -> str:
        """The float type a graph of this group stored at ``rung`` runs its float parts in."""
        return rung if rung in ("fp16", "fp32") else self.floats


def request_from_plan(plan: Any, group: str) -> GroupRequest:
    """Read a group's weight precision from a ``CompressionPlan`` (or None: fp32).

    The group's ``quant.weights`` sets its rung; an op kind whose ``op_weights`` override is
    higher keeps its nodes at fp32 (at int8 when the override is int8 and the group int4 or
    int2), one that is lower is stored with the group (rounded up). The graph's float parts
    run in ``graph_float(quant.weights, quant.activations)``.
    """
    if plan is None:
        return GroupRequest("fp32")
    quant = plan.group(group).quant
    rung, note = to_export_precision(quant.weights)
    notes = [note] if note else []
    keep: list[str] = []
    int8: list[str] = []
    for kind, precision in sorted(quant.op_weights.items()):
        other, _ = to_export_precision(precision)
        stored = shipped_rung(other, rung)  # the one storage rule scoring rounds by too
        if stored == "int8" != rung:
            int8 += PLAN_OP_TYPES.get(kind, ())
            notes.append(f"{kind} stored as int8 (plan asks {precision}, the group {quant.weights})")
        elif stored == "fp32" != rung:
            keep += PLAN_OP_TYPES.get(kind, ())
            notes.append(f"{kind} kept at fp32 (plan asks {precision}, the group {quant.weights})")
        elif other != rung:
            notes.append(f"{kind} stored as {rung} with the group (plan asks {precision})")
    runs = graph_float(quant.weights, quant.activations)  # the graph's float type, as scored
    if quant.activations not in ("int8", runs):
        notes.append(f"activations {quant.activations}: the {rung} graph runs its float math in {runs} (scored so too)")
    return GroupRequest(rung, tuple(keep), tuple(notes), tuple(int8), runs)


def weight_op_types(model: onnx.ModelProto) -> set[str]:
    """ONNX op types in ``model`` whose weight input is a constant initializer."""
    inits = {i.name for i in model.graph.initializer}
    return {n.op_type for n in model.graph.node if n.op_type in TARGET_OP_KIND and len(n.input) > 1 and n.input[1] in inits}


def candidate_precisions(requested: str, op_types: set[str], target: Any) -> tuple[list[str], list[str]]:
    """Rungs to try, from ``requested`` up to fp32, that ``target`` can run for ``op_types``.

    Args:
        requested: rung the plan asks for.
        op_types: ONNX weight op types in the group's graphs (excluding nodes kept at fp32).
        target: a ``Target`` (with ``can_deploy(precision, op_kind)``) or None for no limits.

    Returns:
        (candidates in order, notes on rungs skipped for the target).
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown export precision {requested!r}; expected one of {PRECISIONS}")
    rungs = list(PRECISIONS[PRECISIONS.index(requested) :])
    if target is None:
        return rungs, []
    kinds = sorted({TARGET_OP_KIND[t] for t in op_types})
    kept, notes = [], []
    for rung in rungs:
        cannot = [k for k in kinds if not target.can_deploy(rung, k)]
        if rung != "fp32" and cannot:
            notes.append(f"{rung} skipped: target {target.name} cannot run {'/'.join(cannot)} in {rung}")
            continue
        kept.append(rung)
    return kept, notes


__all__ = [
    "CPU_INT8_NOTE",
    "GroupRequest",
    "PLAN_OP_TYPES",
    "TARGET_OP_KIND",
    "candidate_precisions",
    "request_from_plan",
    "to_export_precision",
    "weight_op_types",
]
