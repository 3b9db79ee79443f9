"""Simulated low precision: fake quantization of weights and activations.

Weights get a torch parametrization computing, per output channel, the symmetric scale
``amax / (2^(b-1) - 1)``, then round and clamp, passed through with the straight-through
estimator ``w + (q - w).detach()`` so that training still sees gradients. Linear weights at
4 bits or fewer are rounded as the export stores them instead (:func:`fake_quantize_blocks`:
ONNX Runtime's ``MatMulNBits``, blocks of :data:`LINEAR_LOW_BIT_BLOCK` inputs), so that the
student scored is the one shipped. 16-bit weights are rounded to fp16 the same way (bf16 ones
too: the export stores them as fp16).
The parametrization chains on top of weight norm. A per-op-kind override the export does not
store at its own rung (below its group's: stored with the group; above: kept at fp32) rounds
at the rung it is stored at (:func:`scored_weight_precision`).
Activations (the inputs of the same layers) are rounded in a forward pre-hook: fp16 / bf16,
or int8 per tensor, with a dynamic scale until :func:`calibrate_activations_` fixes a static one
(the form the export ships). Each input rounds as the exported graph runs it
(:func:`layer_activations`): int8 exactly where the export stores the layer as static int8 QDQ
(W8A8: 5- to 8-bit weights, whatever the plan's activations), and elsewhere at the float the
group's graph runs (:func:`~autocompress.compress.plan.graph_float`): fp16 in an fp16 group and
in an integer group with fp16 activations (a GPU target's int8 / int4 graphs), fp32 otherwise.

:func:`strip_fake_quant_` removes all of it and leaves plain fp32 weights equal to the
quantized values (weight norm folded in), the form export expects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.plan import QuantConfig, graph_float, precision_bits, shipped_rung
from autocompress.exceptions import CompressionError

_FLOAT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
LINEAR_LOW_BIT_BLOCK = 32  # inputs per scale of a low-bit linear weight (the export's MatMulNBits block)
LINEAR_BLOCK_MAX_BITS = 4  # linear weights this narrow ship as MatMulNBits; wider ones per channel
_HOOK_ATTR = "_autocompress_act_quant_hook"


# --------------------------------------------------------------------------- functions


def fake_quantize(w: Tensor, bits: int, axis: int = 0) -> Tensor:
    """Return ``w`` rounded to symmetric ``bits``-bit integers per channel along ``axis``.

    The values stay in ``w``'s dtype: ``q = clamp(round(w / s), -L, L) * s`` with
    ``L = 2^(bits-1) - 1`` and ``s = amax / L`` over every other axis. Gradients flow
    straight through (identity: no value lies outside the clamp range), as in
    quantization-aware training. Computed by torch's fused per-channel fake-quantize op.
    """
    if not 2 <= bits <= 8:
        raise CompressionError(f"fake quantization takes 2..8 bits, got {bits}")
    levels = 2 ** (bits - 1) - 1
    dims = [d for d in range(w.dim()) if d != axis]
    magnitude = w.detach().float()
    amax = torch.linalg.vector_norm(magnitude, ord=float("inf"), dim=dims) if dims else magnitude.abs()
    scale = (amax / levels).clamp_min(torch.finfo(torch.float32).tiny)  # [C] fp32
    zero_point = torch.zeros(scale.shape, dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero_point, axis, -levels, levels)


def fake_quantize_blocks(w: Tensor, bits: int, block: int = LINEAR_LOW_BIT_BLOCK) -> Tensor:
    """Return a linear weight ``w`` ``[out, in]`` rounded as ONNX Runtime's symmetric
    ``MatMulNBits`` stores it: every ``block`` consecutive inputs of an output (the last block
    may be shorter) share the scale ``e / -2^(b-1)``, where ``e`` is the block's value of largest
    magnitude with its sign, and take integers in ``[-2^(b-1), 2^(b-1) - 1]``, so that ``e``
    itself is kept exactly. Gradients pass straight through. Checked against onnxruntime's
    quantizer in the export tests.
    """
    if not 2 <= bits <= LINEAR_BLOCK_MAX_BITS or w.dim() != 2:
        raise CompressionError(f"block fake quantization takes a 2-D weight at 2..4 bits, got {list(w.shape)}, {bits}")
    out_dim, in_dim = w.shape
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = torch.nn.functional.pad(w.float(), (0, -in_dim % block)).reshape(out_dim, -1, block)
    detached = x.detach()
    extreme = detached.gather(-1, detached.abs().argmax(-1, keepdim=True))  # [out, blocks, 1], signed
    scale = torch.where(extreme == 0, torch.ones_like(extreme), extreme / low)
    q = torch.clamp(torch.round(detached / scale), low, high) * scale
    rounded = (x + (q - detached)).reshape(out_dim, -1)[:, :in_dim]
    return rounded.to(w.dtype)


def round_to_float(x: Tensor, precision: str) -> Tensor:
    """Return ``x`` rounded to fp16 or bf16 and back, with a straight-through gradient."""
    q = x.to(_FLOAT_DTYPES[precision]).to(x.dtype)
    return x + (q - x).detach()


def fake_quantize_activation(x: Tensor, precision: str, amax: float | None = None) -> Tensor:
    """Round an activation to ``precision`` (fp16/bf16, or int8 per tensor), STE.

    An integer precision scales to ``amax`` when given (a static, calibrated range: values
    beyond it clip, to one step more below than above, as int8 ``QuantizeLinear`` saturates at
    -128 and 127), else to the tensor's own largest magnitude (dynamic).
    """
    if precision == "fp32":
        return x
    if precision in _FLOAT_DTYPES:
        return round_to_float(x, precision)
    bits = precision_bits(precision)
    levels = 2 ** (bits - 1) - 1
    if amax is not None:  # in fp32: a calibrated range may lie beyond an fp16 input's
        # a value beyond the range saturates as QuantizeLinear does: at -2^(b-1) below, 2^(b-1)-1 above
        scale = torch.tensor(amax / levels, dtype=torch.float32, device=x.device)
        q = (torch.clamp(torch.round(x.float() / scale), -levels - 1, levels) * scale).to(x.dtype)
        return x + (q - x).detach()
    scale = (x.detach().abs().amax() / levels).clamp_min(torch.finfo(x.dtype).tiny)
    q = torch.clamp(torch.round(x / scale), -levels, levels) * scale
    return x + (q - x).detach()


# --------------------------------------------------------------------------- parametrization


class FakeQuantWeight(nn.Module):
    """Parametrization that fake-quantizes a weight to ``precision``: per channel along
    ``axis``, or in blocks of inputs for a low-bit linear weight (``blocks``)."""

    def __init__(self, precision: str, axis: int = 0, blocks: bool = False) -> None:
        super().__init__()
        self.precision = precision
        self.axis = axis
        self.bits = precision_bits(precision)
        self.blocks = blocks and self.bits <= LINEAR_BLOCK_MAX_BITS and precision not in _FLOAT_DTYPES

    def forward(self, w: Tensor) -> Tensor:
        if self.precision in _FLOAT_DTYPES:
            return round_to_float(w, self.precision)
        if self.blocks:
            return fake_quantize_blocks(w, self.bits)
        return fake_quantize(w, self.bits, self.axis)

    def extra_repr(self) -> str:
        how = f"blocks of {LINEAR_LOW_BIT_BLOCK} inputs" if self.blocks else f"axis={self.axis}"
        return f"precision={self.precision}, {how}"


def op_kind(module: nn.Module) -> str | None:
    """The op kind of a layer: ``"linear"``, ``"conv"``, ``"conv_transpose"``, else None."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.ConvTranspose1d):
        return "conv_transpose"
    if isinstance(module, nn.Conv1d):
        return "conv"
    return None


def quantizable_weights(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, str, int]]:
    """Yield ``(fqn, module, param_name, op_kind, channel_axis)`` for every quantizable weight.

    Linear, Conv1d and ConvTranspose1d ``weight`` (output channels on axis 1 for the
    transposed conv), plus packed attention projections held as a raw ``in_proj_weight``
    parameter (a linear op, rows are output channels).
    """
    for fqn, module in model.named_modules():
        kind = op_kind(module)
        if kind is not None:
            yield fqn, module, "weight", kind, 1 if kind == "conv_transpose" else 0
        elif isinstance(getattr(module, "in_proj_weight", None), Tensor):
            yield fqn, module, "in_proj_weight", "linear", 0


def add_fake_quant_(
    model: nn.Module,
    config: QuantConfig,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> nn.Module:
    """Attach weight and activation fake quantization to every layer of ``model``, in place.

    Activations are rounded at the input of Linear / Conv1d / ConvTranspose1d layers, and of a
    packed ``in_proj_weight`` (GPT attention) at its module's ``in_proj_input`` (see
    :func:`input_site`), as the exported graph rounds the fused projection's input.

    Args:
        model: any module; its quantizable layers are found by type.
        config: precisions; fp32 layers are left untouched. Each weight rounds at the rung the
            export stores it at where that is not its own (:func:`scored_weight_precision`).
        filter_fn: optional ``(module, fqn) -> bool``; layers where it is False are skipped.

    Returns:
        ``model`` (modified in place).

    Raises:
        CompressionError: if a layer already carries fake quantization.
    """
    for fqn, module, name, kind, axis in list(quantizable_weights(model)):
        if filter_fn is not None and not filter_fn(module, fqn):
            continue
        precision = scored_weight_precision(config.weight_precision(kind), config.weights)
        if precision != "fp32":
            if has_fake_quant(module, name):
                where = f"{fqn or 'model'}.{name}"
                raise CompressionError(f"{where} already has fake quantization; strip it first")
            quantizer = FakeQuantWeight(precision, axis, blocks=kind == "linear")
            parametrize.register_parametrization(module, name, quantizer, unsafe=True)
        activations = layer_activations(config.activations, precision, config.weights)
        site = input_site(module, name)
        if activations != "fp32" and site is not None:
            _add_activation_hook(site, activations)
    return model


def input_site(module: nn.Module, name: str = "weight") -> nn.Module | None:
    """The module whose input is the input of ``module.<name>``'s op, where activation rounding
    hooks on: the layer itself, or a packed attention's ``in_proj_input``; None when there is none."""
    if name == "in_proj_weight":
        site = getattr(module, "in_proj_input", None)
        return site if isinstance(site, nn.Module) else None
    return module if op_kind(module) is not None else None


def layer_activations(activations: str, weight_precision: str, group_weights: str | None = None) -> str:
    """The precision a layer's input runs at in the exported graph, given the plan's
    ``activations``, the layer's ``weight_precision`` and its group's ``group_weights`` (default:
    the layer's own).

    The layer is stored as :func:`shipped_rung` says. Stored as int8, the layer ships as static
    QDQ (W8A8, the form TensorRT and onnxruntime run): its input is int8. Any other layer takes
    its input in the float its group's graph runs (:func:`graph_float`): fp16 in a group stored
    as fp16 (bf16 weights included), and in an integer group whose activations are fp16 (a GPU
    target's int8 / int4 graphs: weight-only int4 layers and layers kept at fp32 read fp16
    tensors); fp32 elsewhere. A float group's ``activations`` change nothing (a bf16 or fp16
    choice its graph does not run is not scored either).
    """
    group = group_weights or weight_precision
    if shipped_rung(weight_precision, shipped_rung(group)) == "int8":
        return "int8"
    return graph_float(group, activations)


def scored_weight_precision(precision: str, group_weights: str) -> str:
    """The precision a layer's weight is rounded at in scoring, given its plan ``precision``
    and its group's ``group_weights``: the rung the export stores it at (:func:`shipped_rung`:
    an override below its group's rung stored with the group, one above kept at fp32; bf16
    stored as fp16), except that an integer width stored at its own rung keeps its own grid
    (int3 rounds to 3 bits in the int4 container)."""
    stored = shipped_rung(precision, shipped_rung(group_weights))
    return precision if precision.startswith("int") and stored == shipped_rung(precision) else stored


def add_input_rounding_(
    model: nn.Module, precision: str, filter_fn: Callable[[nn.Module, str], bool] | None = None
) -> int:
    """Round the input of every weight layer of ``model`` (or those ``filter_fn(module, fqn)``
    accepts) to ``precision`` (fp16 / bf16 / int8), in place, leaving its weight as it is; as
    :func:`add_fake_quant_` rounds inputs, removed by :func:`strip_fake_quant_`. Rebuilds a
    student whose layers rounded inputs the plan's weights no longer imply.

    Returns:
        the number of layers given input rounding.

    Raises:
        CompressionError: a layer's input already rounds.
    """
    if precision == "fp32":
        return 0
    added = 0
    for fqn, module, name, _, _ in list(quantizable_weights(model)):
        site = input_site(module, name)
        if site is None or (filter_fn is not None and not filter_fn(module, fqn)):
            continue
        _add_activation_hook(site, precision)
        added += 1
    return added


def has_fake_quant(module: nn.Module, name: str = "weight") -> bool:
    """True when ``module.<name>`` carries a :class:`FakeQuantWeight` parametrization."""
    if not parametrize.is_parametrized(module, name):
        return False
    return any(isinstance(p, FakeQuantWeight) for p in module.parametrizations[name])


def strip_fake_quant_(model: nn.Module) -> nn.Module:
    """Remove fake quantization in place, leaving plain fp32 weights equal to the quantized ones.

    Every other parametrization of the same weight (weight norm) is folded into the plain
    weight too, which stays a parameter (as trainable as its originals were). Activation
    hooks are removed. Layers without fake quantization keep their
    parametrizations.
    """
    for _, module, name, _, _ in list(quantizable_weights(model)):
        if has_fake_quant(module, name):
            trainable = any(p.requires_grad for p in module.parametrizations[name].parameters())
            with torch.no_grad():
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
            if name in module._buffers:  # folded from several originals (weight norm): torch leaves a buffer
                folded = module._buffers.pop(name)
                module.register_parameter(name, nn.Parameter(folded, requires_grad=trainable))
        site = input_site(module, name)
        handle = site.__dict__.pop(_HOOK_ATTR, None) if site is not None else None
        if handle is not None:
            handle.remove()
    return model


class _ActivationRange:
    """One layer's input rounding: its precision and, once calibrated, a fixed integer range."""

    def __init__(self, precision: str) -> None:
        self.precision = precision
        self.amax: float | None = None  # static symmetric range; None: dynamic (each call's own)
        self.span: tuple[float, float] | None = None  # static asymmetric (u8) range: (min, max)
        self.observed: tuple[float, float] | None = None  # while calibrating: (min, max) seen so far

    @property
    def is_integer(self) -> bool:
        return self.precision not in _FLOAT_DTYPES and self.precision != "fp32"

    def __call__(self, _: nn.Module, args: tuple) -> tuple | None:
        x = args[0]
        if self.observed is not None and self.is_integer:  # calibrating: pass through unrounded
            if x.numel():
                d = x.detach()
                self.observed = (min(self.observed[0], float(d.amin())), max(self.observed[1], float(d.amax())))
            return None
        if self.span is not None:
            return (fake_quantize_activation_u8(x, *self.span), *args[1:])
        return (fake_quantize_activation(x, self.precision, self.amax), *args[1:])


def static_activation_ranges(model: nn.Module) -> dict[str, tuple[float, float]]:
    """The static integer ranges :func:`calibrate_activations_` gave ``model``'s layer inputs.

    Keyed by the path of the weight whose layer reads the input (``h.layers.0.linear1.weight``,
    ``h.layers.0.self_attn.in_proj_weight``); each value is ``(-amax, amax)`` for a symmetric
    range or ``(low, high)`` for an asymmetric uint8 one. Inputs that round to float or are
    still dynamic are left out: the export calibrates those itself.
    """
    ranges: dict[str, tuple[float, float]] = {}
    for key, state in _integer_inputs(model).items():
        if state.span is not None:
            ranges[key] = (float(state.span[0]), float(state.span[1]))
        elif state.amax is not None:
            ranges[key] = (-float(state.amax), float(state.amax))
    return ranges


def _integer_inputs(model: nn.Module) -> dict[str, _ActivationRange]:
    """The rounding state of every weight layer input of ``model`` rounded to integers, keyed
    by the weight's path."""
    states = {}
    for fqn, module, name, _, _ in quantizable_weights(model):
        site = input_site(module, name)
        handle = site.__dict__.get(_HOOK_ATTR) if site is not None else None
        state = getattr(handle, "state", None)
        if state is not None and state.is_integer:
            states[f"{fqn}.{name}" if fqn else name] = state
    return states


def voice_activation_ranges(voice) -> dict[str, tuple[float, float]]:  # noqa: ANN001 - a Voice
    """:func:`static_activation_ranges` of a voice's two models, keyed ``gpt.<path>`` and
    ``sovits.<path>`` (as the export takes them); empty for a stripped student."""
    ranges = {f"gpt.{k}": v for k, v in static_activation_ranges(voice.gpt).items()}
    return ranges | {f"sovits.{k}": v for k, v in static_activation_ranges(voice.sovits).items()}


def load_static_ranges_(model: nn.Module, ranges: Mapping[str, tuple[float, float]], symmetric: bool = True) -> int:
    """Fix the integer input rounding of ``model``'s layers to ``ranges``, in place.

    ``ranges`` is keyed as :func:`static_activation_ranges` names it; each layer named must
    carry integer activation fake quantization. ``symmetric``: round to symmetric s8 over
    ``max(|low|, |high|)``, else to asymmetric uint8 over ``(low, high)``, as the export's int8
    graphs take the same ranges. Layers not named keep their rounding.

    Returns:
        the number of layers given a range.

    Raises:
        CompressionError: a name is no layer of ``model`` with integer input rounding.
    """
    states = _integer_inputs(model)
    unknown = sorted(set(ranges) - set(states))
    if unknown:
        raise CompressionError(f"activation range for {unknown[0]!r} names no layer with integer input rounding")
    for key, (low, high) in ranges.items():
        state = states[key]
        if symmetric:
            state.amax, state.span = max(abs(float(low)), abs(float(high))), None
        else:
            state.amax, state.span = None, (float(low), float(high))
    return len(ranges)


def fake_quantize_activation_u8(x: Tensor, low: float, high: float) -> Tensor:
    """Round an activation to asymmetric uint8 over the static range ``[low, high]`` (widened to
    hold 0, as onnxruntime's min-max calibration does), STE; values beyond it clip."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / 255.0, torch.finfo(torch.float32).tiny)
    zero = min(max(round(-low / scale), 0), 255)
    q = (torch.clamp(torch.round(x.float() / scale) + zero, 0, 255) - zero) * scale
    return x + (q.to(x.dtype) - x).detach()


def _add_activation_hook(module: nn.Module, precision: str) -> None:
    if _HOOK_ATTR in module.__dict__:
        raise CompressionError(f"{type(module).__name__} already has activation fake quantization")
    state = _ActivationRange(precision)
    handle = module.register_forward_pre_hook(state)
    handle.state = state  # type: ignore[attr-defined]
    module.__dict__[_HOOK_ATTR] = handle


def _integer_ranges(models: Sequence[nn.Module]) -> list[_ActivationRange]:
    ranges = []
    for model in models:
        for module in model.modules():
            handle = module.__dict__.get(_HOOK_ATTR)
            if handle is not None and handle.state.is_integer:
                ranges.append(handle.state)
    return ranges


def calibrate_activations_(
    models: nn.Module | Sequence[nn.Module], run: Callable[[], object], symmetric: bool = True
) -> int:
    """Give every integer activation of ``models`` a static range from the inputs its layer sees
    while ``run()`` executes, as the export's static int8 calibration (min-max over the float
    graph on evaluation inputs) does: symmetric (the largest magnitude; s8, the form of GPU
    targets) or, with ``symmetric=False``, asymmetric uint8 over the minimum and maximum (the
    form of targets that run onnxruntime's CPU provider only).

    During ``run()`` those inputs pass unrounded; afterwards each rounds to its fixed range,
    clipping beyond it, instead of to each call's own largest magnitude. A layer ``run()`` never
    calls stays dynamic. ``run()`` is skipped when no layer has integer activations.

    Returns:
        the number of layers given a static range.
    """
    ranges = _integer_ranges([models] if isinstance(models, nn.Module) else list(models))
    if not ranges:
        return 0
    for r in ranges:
        r.observed = (math.inf, -math.inf)
    try:
        run()
    finally:
        seen = [(r, r.observed) for r in ranges]
        for r in ranges:
            r.observed = None
    calibrated = 0
    for r, (low, high) in seen:
        if low > high or max(abs(low), abs(high)) == 0.0:  # never called, or only zeros
            continue
        if symmetric:
            r.amax, r.span = max(abs(low), abs(high)), None
        else:
            r.amax, r.span = None, (low, high)
        calibrated += 1
    return calibrated


__all__ = [
    "FakeQuantWeight",
    "add_fake_quant_",
    "add_input_rounding_",
    "calibrate_activations_",
    "fake_quantize",
    "fake_quantize_blocks",
    "fake_quantize_activation",
    "fake_quantize_activation_u8",
    "has_fake_quant",
    "layer_activations",
    "load_static_ranges_",
    "op_kind",
    "quantizable_weights",
    "round_to_float",
    "scored_weight_precision",
    "static_activation_ranges",
    "strip_fake_quant_",
    "voice_activation_ranges",
]
