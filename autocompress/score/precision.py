"""Which precision each weight and op ends up in on a target, given weight bits and activation precisions.

The caller gives weight bits per module (a dict from fqn or module-group prefix to bits) and an
activation precision per module. For a compression plan,
:func:`~autocompress.score.voice_cost.precisions_from_plan` gives both as the exported graphs run
them (what the search records): fp16 for a group stored as fp16, and for an int8 or int4 group
on a GPU target (its float parts and KV cache are fp16 there); fp32 for every other group. On a
target, those choices become what can actually ship:

- Activations are floating point: ``fp32`` or ``fp16``. Where the caller leaves them open, the
  target's default is used whatever the weights are: called directly with weight bits alone
  (``project_voice``, ``project_latency``), an int4 or int8 weight is projected in an fp16
  graph on a GPU, as a GPU target's bundle ships it, and in fp32 on a CPU; pass the plan's
  precisions for what a given plan ships. bf16 is projected as the fp16 it ships as (the export
  writes no bf16). A precision the target cannot run (fp16 on a CPU) falls back to fp32.
- Weights of 9 to 16 bits, and unquantized weights, are stored as floats at the activation
  precision (where left open: fp16 on a GPU, fp32 on a CPU).
- Weights of more than 16 bits (32: an op kind kept at fp32 in an fp16 group) are stored in
  fp32 and the op computes in fp32: the export leaves those nodes out of the fp16 graph, with a
  Cast to fp32 before each and back to fp16 after.
- Weights of 8 bits ship as int8 and the op computes in int8 (W8A8: TensorRT QDQ, onnxruntime
  QDQ or MatMulInteger), where the target deploys int8 for that op kind.
- Weights of 4 bits or fewer ship as int4, weight-only (MatMulNBits): the op computes at the
  activation precision (the graph's float: fp16 on a GPU target), with one scale per block of weights.
- A container the target cannot deploy for that op kind (int4 convolution anywhere, int8 on a
  Jetson Nano) is replaced by the next wider one that it can, and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from autocompress.exceptions import ConfigError
from autocompress.targets import PRECISION_BITS, Target

FLOAT_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")

WeightBits = Mapping[str, int]
ActPrecision = Mapping[str, str] | str | None


INT4_BLOCK = 32  # weights per int4 scale, as the export's MatMulNBits stores them (export.ort_quant.NBITS_BLOCK)


@dataclass(frozen=True)
class Deployed:
    """How one weight operand ships and computes on a target.

    Attributes:
        storage: precision the weight is stored in (``"fp16"``, ``"int8"``, ``"int4"``...).
        compute: precision the op's math runs in.
        note: why the plan's choice was changed, or "".
    """

    storage: str
    compute: str
    note: str = ""

    @property
    def weight_bytes_per_element(self) -> float:
        stored = PRECISION_BITS[self.storage] / 8
        if self.storage == "int4":  # plus one scale per block of weights, in the op's float precision
            return stored + PRECISION_BITS[self.compute] / 8 / INT4_BLOCK
        return stored


def lookup(fqn: str, table: Mapping[str, object] | None) -> object | None:
    """The value of the longest key in ``table`` that is ``fqn`` or a dotted prefix of it.

    Keys ``""`` and ``"*"`` match everything (the default). Keys may be module groups
    (``"dec"``), modules (``"gpt.h.layers.3.linear1"``) or parameters. Weight-bit tables may
    also carry per-op-kind keys ``"dec@conv"``, ``"dec@conv_transpose"`` (see :func:`weight_bits_for`).
    """
    if not table:
        return None
    best, best_len = None, -1
    for key, value in table.items():
        k = "" if key == "*" else key
        if (k == "" or fqn == k or fqn.startswith(k + ".")) and len(k) > best_len:
            best, best_len = value, len(k)
    return best


def weight_bits_for(fqn: str, op_kind: str, weight_bits: WeightBits | None) -> int | None:
    """The plan's bits for a weight of an ``op_kind`` op (``matmul``, ``conv`` or
    ``conv_transpose``) named ``fqn``.

    Keys ``"<prefix>@<op_kind>"`` (a per-op-kind override) win over plain ``"<prefix>"`` keys;
    within each, the longest matching prefix wins (see :func:`lookup`). A ``conv`` override
    does not reach transposed convolutions, nor the reverse, as in the plan and the export.
    """
    if not weight_bits:
        return None
    suffix = f"@{op_kind}"
    by_kind = {k[: -len(suffix)]: v for k, v in weight_bits.items() if k.endswith(suffix)}
    plain = {k: v for k, v in weight_bits.items() if "@" not in k}
    value = lookup(fqn, by_kind)
    if value is None:
        value = lookup(fqn, plain)
    return None if value is None else int(value)  # type: ignore[call-overload]


def activation_precision(fqn: str, act_precision: ActPrecision, target: Target) -> tuple[str, str]:
    """The float activation precision of module ``fqn`` on ``target``, and a note if it changed.

    Where ``act_precision`` leaves ``fqn`` open: the target's ``default_precision``, whatever
    the module's weights (see the module docstring for what that means for integer weights).
    """
    wanted = act_precision if isinstance(act_precision, str) else lookup(fqn, act_precision)
    wanted = str(wanted) if wanted is not None else target.default_precision
    if wanted not in FLOAT_PRECISIONS:
        raise ConfigError(
            f"activation precision for {fqn or 'the model'} must be one of {FLOAT_PRECISIONS}, got {wanted!r}"
        )
    shipped = "fp16" if wanted == "bf16" else wanted  # the export stores and runs bf16 as fp16
    if target.can_deploy(shipped, "matmul"):
        return shipped, "bf16 activations ship as fp16: fp16 used" if shipped != wanted else ""
    fallback = "fp16" if target.can_deploy("fp16", "matmul") else "fp32"
    return fallback, f"{wanted} activations not deployable on {target.name}: {fallback} used"


def deploy_weight(bits: int | None, op_kind: str, act: str, target: Target) -> Deployed:
    """How a weight of ``bits`` bits used by a ``matmul`` or ``conv`` ships on ``target``.

    Args:
        bits: the plan's weight bits (None: not quantized; more than 16: kept at fp32).
        op_kind: ``"matmul"`` or ``"conv"``.
        act: the op's float activation precision (from :func:`activation_precision`).
        target: the hardware target.
    """
    if bits is not None and bits < 1:
        raise ConfigError(f"weight bits must be >= 1, got {bits}")
    if bits is not None and bits > PRECISION_BITS["fp16"]:  # kept at fp32: its nodes are left out of the fp16 graph
        return Deployed("fp32", "fp32")
    if bits is None or bits > 8:
        return Deployed(act, act)
    wanted = "int4" if bits <= 4 else "int8"
    for storage in ("int4", "int8"):
        if PRECISION_BITS[storage] < bits or PRECISION_BITS[storage] < PRECISION_BITS[wanted]:
            continue
        if target.can_deploy(storage, op_kind):
            note = "" if storage == wanted else (
                f"{op_kind} {wanted} not deployable on {target.name}: projected as {storage}"
            )
            compute = "int8" if storage == "int8" and "int8" in target.peak_tflops else act
            return Deployed(storage, compute, note)
    return Deployed(act, act, f"{op_kind} {wanted} not deployable on {target.name}: projected as {act}")
