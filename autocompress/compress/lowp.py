"""Real low-precision execution in torch, for research on speed and memory (not for training).

Nothing in the search, its scoring or the export uses this module, and what it runs is not what
a bundle runs: a group is cast to the float its plan's activations name (bf16 stays bf16; fp16
activations make an fp32 or int4 group fp16), whereas an exported graph's float is
:func:`~autocompress.compress.plan.graph_float`'s (an fp32 group's graph stays fp32 whatever its
activations; an integer group's runs fp16 only where its activations are 16-bit, as a GPU
target's plan says); int8 layers run weight-only on
float inputs, whereas the bundle runs them as W8A8 QDQ; an fp16 group with an op kind the
bundle keeps at fp32 runs in one dtype here. For what ships, time and size the exported bundle.

fp16 / bf16 are plain casts. int8 weight-only runs ``nn.Linear`` layers with int8 weights
and one scale per output channel through ``torch._weight_int8pack_mm`` (the CPU and CUDA
kernel behind torch's own int8 weight-only path; torchao is not a dependency). Other
layers and lower bit widths have no real kernel here: they stay fp32 holding the
quantized values after :func:`~autocompress.compress.fake_quant.strip_fake_quant_`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress.plan import CompressionPlan, QuantConfig
from autocompress.exceptions import CompressionError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
INT8_LEVELS = 127  # symmetric int8: -127..127


def cast_(model: nn.Module, precision: str) -> nn.Module:
    """Cast every floating parameter and buffer of ``model`` to ``precision``, in place.

    Parametrized weights (weight norm) keep working: their originals are cast.
    """
    if precision not in DTYPES:
        raise CompressionError(f"cast_ takes one of {sorted(DTYPES)}, got {precision!r}")
    return model.to(DTYPES[precision])


class Int8WeightOnlyLinear(nn.Module):
    """A Linear layer storing int8 weights with a per-output-channel scale.

    ``y = x @ (w_int8 * scale)^T + bias``, computed by ``torch._weight_int8pack_mm`` in the
    activation dtype (fp32, fp16 or bf16); the weight is never materialised in float.
    """

    def __init__(self, weight_int8: Tensor, scale: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.in_features = weight_int8.shape[1]
        self.out_features = weight_int8.shape[0]
        self.register_buffer("weight_int8", weight_int8)  # [out, in] int8
        self.register_buffer("scale", scale)  # [out] float
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8WeightOnlyLinear:
        """Quantize a Linear's (effective) weight to int8, symmetric per output channel."""
        w = linear.weight.detach().float()  # [out, in]
        scale = (w.abs().amax(dim=1) / INT8_LEVELS).clamp_min(torch.finfo(torch.float32).tiny)
        q = torch.clamp(torch.round(w / scale[:, None]), -INT8_LEVELS, INT8_LEVELS).to(torch.int8)
        return cls(q, scale.to(linear.weight.dtype), linear.bias)

    def dequantized_weight(self) -> Tensor:
        return self.weight_int8.float() * self.scale.float()[:, None]

    @property
    def weight(self) -> Tensor:
        """The dequantized weight (for code that reads ``.weight.dtype`` / ``.device``)."""
        return self.dequantized_weight().to(self.scale.dtype)

    def forward(self, x: Tensor) -> Tensor:  # [..., in] -> [..., out]
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).contiguous()  # the int8 kernel needs a dense last dimension
        y = torch._weight_int8pack_mm(x2, self.weight_int8, self.scale.to(x.dtype))
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight-only"


def int8_weight_only_(model: nn.Module, filter_fn=None) -> nn.Module:  # noqa: ANN001
    """Replace every ``nn.Linear`` of ``model`` by an :class:`Int8WeightOnlyLinear`, in place.

    Args:
        model: the module; Linear layers with parametrized weights are folded first.
        filter_fn: optional ``(module, fqn) -> bool`` choosing the layers.

    Returns:
        ``model``.
    """
    targets = [
        (fqn, m)
        for fqn, m in model.named_modules()
        if isinstance(m, nn.Linear) and (filter_fn is None or filter_fn(m, fqn))
    ]
    for fqn, linear in targets:
        if parametrize.is_parametrized(linear, "weight"):
            with torch.no_grad():
                parametrize.remove_parametrizations(linear, "weight", leave_parametrized=True)
        parent_name, _, child = fqn.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if not fqn:
            raise CompressionError("int8_weight_only_ needs a container, not a bare nn.Linear")
        setattr(parent, child, Int8WeightOnlyLinear.from_linear(linear))
    return model


def group_dtype(quant: QuantConfig, op_kinds: tuple[str, ...]) -> str:
    """The dtype :func:`lower_precision_` runs a group in: its plan's fp16/bf16 activations,
    else fp16 when all its layers are stored fp16 (bf16 weights included), else fp32. Each layer
    counts at the precision the export stores it at (an override below a float group goes with
    the group). Not always the float the group's exported graph runs (see the module docstring)."""
    from autocompress.compress.fake_quant import scored_weight_precision

    if quant.activations in ("fp16", "bf16"):
        return quant.activations
    weights = {scored_weight_precision(quant.weight_precision(k), quant.weights) for k in op_kinds}
    if len(weights) == 1 and weights <= {"fp16", "bf16"}:
        return weights.pop()
    return "fp32"


def lower_precision_(target: Any, plan: CompressionPlan) -> Any:
    """Run a compressed voice (or bare model) in real low precision, in place, for research
    measurements (not the precisions its bundle runs: see the module docstring).

    Fake quantization is stripped first (weights keep their quantized values). Each group
    is then cast to :func:`group_dtype`; a SoVITS group in fp16/bf16 gets hooks that cast
    its inputs to that dtype and its outputs back to fp32, so mixed groups work together;
    Linear layers with int8 weights become :class:`Int8WeightOnlyLinear`. Other integer
    widths have no kernel here and stay as float weights on the integer grid.

    Returns:
        ``target``.
    """
    from autocompress.compress.deploy import GROUP_OP_KINDS
    from autocompress.compress.fake_quant import scored_weight_precision, strip_fake_quant_
    from autocompress.models.gpt_sovits.voice import SOVITS_GROUP_MEMBERS, Voice

    roots = [target.gpt, target.sovits] if isinstance(target, Voice) else [target]
    for root in roots:
        strip_fake_quant_(root)
        is_gpt = hasattr(root, "h")
        for group in ("gpt",) if is_gpt else ("enc_p", "flow", "dec", "ref_enc"):
            quant = plan.group(group).quant
            dtype = group_dtype(quant, GROUP_OP_KINDS[group])
            # int8 as the export stores it: an int8 override in a float group ships with the group
            int8 = scored_weight_precision(quant.weight_precision("linear"), quant.weights) == "int8"
            if is_gpt:
                if dtype != "fp32":
                    cast_(root, dtype)
                if int8:
                    int8_weight_only_(root)
                continue
            for name in SOVITS_GROUP_MEMBERS[group]:
                if (module := getattr(root, name, None)) is None:
                    continue
                if dtype != "fp32":
                    cast_(module, dtype)
                if int8 and isinstance(module, nn.Linear):  # a Pro layer of the group, at the top level
                    module = Int8WeightOnlyLinear.from_linear(module)
                    setattr(root, name, module)
                elif int8:
                    int8_weight_only_(module)
                if dtype != "fp32":
                    _cast_at_boundary_(module, DTYPES[dtype])
    return target


def _cast_at_boundary_(module: nn.Module, dtype: torch.dtype) -> None:
    def convert(value: Any, to: torch.dtype) -> Any:
        if torch.is_tensor(value) and value.is_floating_point():
            return value.to(to)
        if isinstance(value, (tuple, list)):
            return type(value)(convert(v, to) for v in value)
        return value

    def before(_: nn.Module, args: tuple, kwargs: dict) -> tuple:
        return convert(args, dtype), {k: convert(v, dtype) for k, v in kwargs.items()}

    def after(_: nn.Module, __: tuple, output: Any) -> Any:
        return convert(output, torch.float32)

    module.register_forward_pre_hook(before, with_kwargs=True)
    module.register_forward_hook(after)


def linear_int8(x: Tensor, layer: Int8WeightOnlyLinear) -> Tensor:
    """Reference float computation of an :class:`Int8WeightOnlyLinear` (for checks)."""
    return F.linear(x.float(), layer.dequantized_weight(), None if layer.bias is None else layer.bias.float())


__all__ = [
    "DTYPES",
    "Int8WeightOnlyLinear",
    "cast_",
    "group_dtype",
    "int8_weight_only_",
    "linear_int8",
    "lower_precision_",
]
