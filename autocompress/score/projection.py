"""Latency projected for a hardware target: a roofline over the ops of a :class:`ModelProfile`.

Every recorded op costs

    max(FLOPs / (peak[compute precision] x efficiency),
        (weight bytes + activation bytes) / (bandwidth x efficiency))  +  launch overhead

and a call costs the sum over its ops. Weight bytes use each weight's deployed precision (see
:mod:`autocompress.score.precision`); activation bytes and float math use the module's activation
precision (for a plan, :func:`~autocompress.score.voice_cost.precisions_from_plan`: the float its
exported graph runs: in int8 and int4 graphs fp16 on a GPU target and fp32 on a CPU one, as a
note says where it differs from the target's default float), except the inputs of a layer whose weights ship as int8: its export (static
W8A8 QDQ) feeds the int8 MatMul/Conv the QuantizeLinear's int8 output, so those inputs count
1 byte per element (its output stays float). An op kind kept at fp32 in an fp16 group (32-bit
weights) runs as its export does: the node reads and writes fp32, with a Cast to fp32 before it
and one back to fp16 after it, each one more launch reading and writing its tensor.
Peak, bandwidth, launch overhead and efficiency come from the target's data file.

Because every op pays at least its bytes over the bandwidth, a call never projects below
``weight bytes read / bandwidth``: for GPT decoding that is the per-token floor of a
bandwidth-bound model. Runtime fusion is not modelled (each aten op is one launch), which
errs on the slow side for launch-bound calls on GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from autocompress.exceptions import ConfigError
from autocompress.score.metric import Metric, projected
from autocompress.score.precision import ActPrecision
from autocompress.score.precision import WeightBits
from autocompress.score.precision import activation_precision
from autocompress.score.precision import deploy_weight
from autocompress.score.precision import weight_bits_for
from autocompress.score.profile import ModelProfile
from autocompress.targets import PRECISION_BITS, Target


# How each integer storage ships, per op kind (export.ort_quant), in a graph whose float parts are
# the group's float (compress.plan.graph_float: fp16 on a GPU target, fp32 on a CPU one).
# On a GPU, W8A8 is projected at the int8 tensor rate, as TensorRT builds QDQ into int8 kernels;
# onnxruntime's CUDA provider alone dequantizes QDQ and multiplies in the graph's float (field
# notes: a QDQ graph needs TensorRT for its speed-up), so the int8 note says which runtime the
# figure assumes ({act}: the graph's float, fp16 for a GPU target's export).
_TRT_INT8 = " (int8 kernels as TensorRT builds them; onnxruntime's CUDA provider runs QDQ in {act})"
_INT_FORMS = {
    "int8": {"matmul": "W8A8 QDQ", "conv": "W8A8 QDQ"},
    "int4": {"matmul": "weight-only MatMulNBits", "conv": "weight-only DequantizeLinear"},
}


@dataclass(frozen=True)
class Projection:
    """The projected cost of one profiled call on one target.

    Attributes:
        target: target name.
        seconds: total projected time.
        compute_s, memory_s: sums of each op's compute and memory terms (before the max).
        launch_s: launch overhead total.
        flops: FLOPs of the call.
        weight_bytes: weight bytes read, at deployed precisions.
        activation_bytes: activation bytes read and written.
        launches: ops counted as kernel launches (with the Casts around ops kept at fp32).
        notes: precision substitutions made, and rates the target lacks (deduplicated).
    """

    target: str
    seconds: float
    compute_s: float
    memory_s: float
    launch_s: float
    flops: int
    weight_bytes: float
    activation_bytes: float
    launches: int
    notes: tuple[str, ...] = ()

    @property
    def ms(self) -> float:
        return self.seconds * 1e3

    def metric(self, name: str, scale: float = 1.0, unit: str = "ms") -> Metric:
        """This projection as a :class:`Metric`; ``scale`` multiplies the value in ms."""
        return projected(name, self.ms * scale, unit, self.target, "; ".join(self.notes))


def require_figures(target: Target) -> None:
    """Raise when ``target`` has no datasheet figures (a measured target not probed)."""
    if not target.has_figures:
        raise ConfigError(
            f"target {target.name!r} is measured, not projected: it has no datasheet figures; "
            "measure on it, or pass probe_host(target) to compare with a projection"
        )


def project_latency(
    profile: ModelProfile,
    target: Target,
    weight_bits: WeightBits | None = None,
    act_precision: ActPrecision = None,
) -> Projection:
    """Project the time of the profiled call on ``target``.

    Args:
        profile: from :func:`~autocompress.score.profile.profile_module`.
        target: the hardware target (must have figures; see :func:`require_figures`).
        weight_bits: fqn or group prefix -> weight bits (None or missing: unquantized).
        act_precision: one float precision for all, or fqn/group prefix -> precision
            (default: the target's ``default_precision``).
    """
    require_figures(target)
    eff = target.efficiency
    bandwidth = target.bandwidth_bytes_per_s * eff
    launch = target.launch_overhead_us * 1e-6
    total = compute_total = memory_total = 0.0
    flops = 0
    weight_total = act_total = 0.0
    launches = len(profile.ops)
    notes: dict[str, None] = {}
    for op in profile.ops:
        act, note = activation_precision(op.module, act_precision, target)
        if note:
            notes[note] = None
        act_bytes = PRECISION_BITS[act] / 8
        compute = act if op.kind != "other" else "fp32"
        weight_bytes = 0.0
        in_bytes = act_bytes  # per float input element
        kept_fp32 = False  # an op kind kept at fp32 inside a lower-precision float graph
        for w in op.weights:
            if w.quantizable:
                bits = weight_bits_for(w.fqn, "conv_transpose" if op.transposed else op.kind, weight_bits)
                d = deploy_weight(bits, op.kind, act, target)
                if d.note:
                    notes[d.note] = None
                weight_bytes += w.elements * d.weight_bytes_per_element
                compute = d.compute
                trt = _TRT_INT8.format(act=act) if d.storage == "int8" and target.kind == "gpu" else ""
                if d.storage in _INT_FORMS and (trt or act != target.default_precision):
                    group = op.module.split(".")[0] or w.fqn.split(".")[0]
                    form = _INT_FORMS[d.storage]["matmul" if op.kind == "matmul" else "conv"]
                    notes[f"{d.storage} {group}: {form} in an {act} graph{trt}"] = None
                if d.storage == "int8":  # W8A8: the input arrives quantized
                    in_bytes = PRECISION_BITS["int8"] / 8
                kept_fp32 = kept_fp32 or (d.storage == "fp32" != act)
            else:
                weight_bytes += w.elements * act_bytes
        inputs = op.act_float_in_elements
        out_bytes = act_bytes  # per float output element
        cast_bytes = 0.0
        if kept_fp32:  # the node runs in fp32 between a Cast up on each input and one down on each output
            fp32 = PRECISION_BITS["fp32"] / 8
            in_bytes = out_bytes = fp32
            cast_bytes = op.act_float_elements * (act_bytes + fp32)
            launches += 2
        moved = (weight_bytes + inputs * in_bytes + (op.act_float_elements - inputs) * out_bytes
                 + op.act_other_bytes)
        peak = target.peak_flops(compute)
        if not peak:
            peak = target.peak_flops("fp32")
            if op.flops:
                notes[f"no {compute} rate for {target.name}: its {compute} math projected at the fp32 rate"] = None
        t_compute = op.flops / (peak * eff)
        t_memory = moved / bandwidth
        t_casts = cast_bytes / bandwidth  # the Casts are memory-bound ops of their own
        total += max(t_compute, t_memory) + launch + t_casts + (2 * launch if kept_fp32 else 0.0)
        compute_total += t_compute
        memory_total += t_memory + t_casts
        flops += op.flops
        weight_total += weight_bytes
        act_total += moved - weight_bytes + cast_bytes
    return Projection(
        target=target.name,
        seconds=total,
        compute_s=compute_total,
        memory_s=memory_total,
        launch_s=launch * launches,
        flops=flops,
        weight_bytes=weight_total,
        activation_bytes=act_total,
        launches=launches,
        notes=tuple(notes),
    )


def weight_bytes_read(profile: ModelProfile, target: Target, weight_bits: WeightBits | None = None,
                      act_precision: ActPrecision = None) -> float:
    """Bytes of weights one profiled call reads on ``target`` (the bandwidth floor's numerator)."""
    return project_latency(profile, target, weight_bits, act_precision).weight_bytes

