"""Op-level profiles of a model call on the meta device: FLOPs, weights read, activations moved.

:func:`profile_module` runs any call of a module (``forward``, ``decode_step``, ``decode``...) on
a meta copy of it, so nothing is computed or allocated and a 77 M-parameter model profiles in a
fraction of a second. FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (inside
``sdpa_kernel(SDPBackend.MATH)``, the only attention backend it sees through on the CPU and
meta devices). Around it, a dispatch mode records one :class:`OpRecord` per aten op: the module
it ran in, its kind (``matmul``, ``conv`` or ``other``), its FLOPs, the parameters it reads and
the activation elements it reads and writes. A :class:`LiveTensorTracker` gives the activation
peak of the same run.

Attention of a single query (a decode step over a KV cache) is recorded as the exported decode
graph computes it: the query scaled, one product with the keys, a softmax, one product with the
values, so each cached key and value is read once. The math backend would also scale every key
(reading and writing the whole key cache once more), which no shipped decode graph does.
Attention of several queries (a prefill) keeps the math backend's ops, as its export does.

Weight preparation (ops whose tensor inputs are all parameters or buffers, such as weight
norm's ``g * v / |v|``) is folded at export, so it is not recorded as work: its result counts
as a weight of the parameter it came from. View ops move no data and are not recorded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.weak import WeakIdKeyDictionary

from autocompress.score.tracker import LiveTensorTracker

_MATMUL_OPS = {
    "mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear", "_scaled_mm", "dot", "mv", "addmv",
}
_CONV_OPS = {"convolution", "_convolution", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"}
# Ops that read only the rows they return from their first (table) argument.
_GATHER_OPS = {"embedding", "index_select", "index", "gather"}
# Bookkeeping ops that launch nothing.
_FREE_OPS = {"detach", "alias", "lift_fresh", "_unsafe_view", "set_", "resize_", "empty", "empty_like",
             "empty_strided", "_local_scalar_dense", "_to_copy_noop"}


@dataclass(frozen=True)
class WeightRead:
    """One parameter (or buffer) read by an op.

    Attributes:
        fqn: the parameter's name, prefixed like the profile (``"gpt.h.layers.0.linear1.weight"``).
        elements: elements read (a gathered table counts only the rows read).
        quantizable: True when it is the weight operand (>= 2-D) of a matmul or convolution,
            so a plan's weight bits apply to it; biases, norms and tables stay at the
            activation precision.
    """

    fqn: str
    elements: int
    quantizable: bool


@dataclass(frozen=True)
class OpRecord:
    """One aten op of a profiled call.

    Attributes:
        op: aten name, e.g. ``"aten.addmm.default"``.
        module: fqn of the innermost module whose ``forward`` was running (prefixed).
        kind: ``"matmul"``, ``"conv"`` or ``"other"``.
        flops: floating-point operations, as ``FlopCounterMode`` counts them.
        weights: parameters read.
        act_float_elements: floating-point activation elements read plus written.
        act_other_bytes: bytes of integer/boolean activations read plus written.
        transposed: a transposed convolution (a plan may give those their own precision).
        act_float_in_elements: the floating-point activation elements read (part of
            ``act_float_elements``): the inputs a W8A8 layer reads as int8.
    """

    op: str
    module: str
    kind: str
    flops: int
    weights: tuple[WeightRead, ...]
    act_float_elements: int
    act_other_bytes: int
    transposed: bool = False
    act_float_in_elements: int = 0


@dataclass(frozen=True)
class ModelProfile:
    """Every op of one call, plus the live-activation peak of that call.

    Attributes:
        ops: recorded ops in execution order.
        peak_activation_bytes_at: live-tensor peak had every float element taken w bytes,
            for w in 4, 2, 1 (fp32, 16-bit, 8-bit activations).
    """

    ops: tuple[OpRecord, ...]
    peak_activation_bytes_at: Mapping[int, int]

    @property
    def flops(self) -> int:
        return sum(o.flops for o in self.ops)

    @property
    def launches(self) -> int:
        return len(self.ops)

    def peak_activation_bytes(self, float_bytes: int = 4) -> int:
        return int(self.peak_activation_bytes_at[float_bytes])

    def __add__(self, other: ModelProfile) -> ModelProfile:
        """Calls run one after the other: ops concatenated, the larger peak per width."""
        return ModelProfile(
            ops=self.ops + other.ops,
            peak_activation_bytes_at={
                w: max(self.peak_activation_bytes_at[w], other.peak_activation_bytes_at[w])
                for w in self.peak_activation_bytes_at
            },
        )


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers live on the meta device.

    The real tensors are never copied (they are pre-seeded in deepcopy's memo), so this is
    cheap for large models and leaves ``module`` untouched.
    """
    memo: dict[int, Any] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=False)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(module, memo)


def to_meta(tree: Any) -> Any:
    """Map every tensor in a (nested list/tuple/dict) tree to an empty meta tensor of its shape."""
    return tree_map(lambda t: torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) else t, tree)


def profile_module(
    module: nn.Module,
    run: Callable[..., Any],
    setup: Callable[[nn.Module], Any] | None = None,
    prefix: str = "",
) -> ModelProfile:
    """Profile ``run(meta_module, state)`` where ``state = setup(meta_module)``.

    Args:
        module: the model; it is not modified or run (a meta copy is).
        run: the call to profile, e.g. ``lambda m, s: m.decode_step(tok, s, pos)``. Inputs must
            be meta tensors (see :func:`to_meta`) or be created by ``setup`` on the meta module.
        setup: unprofiled preparation (e.g. allocating a KV cache); its result is ``state``.
        prefix: prepended to every module and parameter name (``"gpt"``), so that plan keys
            such as a module group name match.

    Returns:
        The :class:`ModelProfile` of the call.
    """
    meta = meta_copy(module)
    pre = f"{prefix}." if prefix else ""
    names: WeakIdKeyDictionary = WeakIdKeyDictionary()
    for name, p in meta.named_parameters(remove_duplicate=False):
        names[p] = pre + name
    for name, b in meta.named_buffers(remove_duplicate=False):
        names[b] = pre + name
    state = setup(meta) if setup is not None else None
    stack: list[str] = [prefix]
    hooks = []

    def enter(fqn: str) -> None:
        stack.append(fqn)

    def leave() -> None:
        stack.pop()

    for name, sub in meta.named_modules():
        fqn = pre + name if name else prefix
        hooks.append(sub.register_forward_pre_hook(lambda _m, _a, fqn=fqn: enter(fqn)))
        hooks.append(sub.register_forward_hook(lambda _m, _a, _o: leave()))
    counter = FlopCounterMode(display=False)
    recorder = _OpRecorder(counter, names, stack)
    tracker = LiveTensorTracker()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), _DecodeAttention(), counter, tracker, recorder:
            out = run(meta, state)
        del out
    finally:
        for h in hooks:
            h.remove()
    return ModelProfile(ops=tuple(recorder.ops), peak_activation_bytes_at=dict(tracker.peak_bytes_at))


class _OpRecorder(TorchDispatchMode):
    """Record one :class:`OpRecord` per op; FLOPs read from the enclosing FlopCounterMode."""

    def __init__(self, counter: FlopCounterMode, names: WeakIdKeyDictionary, stack: list[str]) -> None:
        super().__init__()
        self.counter = counter
        self.names = names  # tensor -> parameter fqn, for parameters and tensors derived from them
        self.stack = stack
        self.ops: list[OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        before = self.counter.get_total_flops()
        out = func(*args, **kwargs)
        flops = self.counter.get_total_flops() - before
        name = func._overloadpacket.__name__
        tensors_in = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        tensors_out = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        weight_in = [t for t in tensors_in if t in self.names]
        if func.is_view or name in _FREE_OPS:
            if weight_in and len(weight_in) == len(tensors_in):
                for t in tensors_out:
                    self.names[t] = self.names[weight_in[0]]
            return out
        if not tensors_in:
            return out  # factory ops (arange, zeros, full): constants at export
        if len(weight_in) == len(tensors_in):
            # Weight preparation (weight norm, alpha * table, dtype casts of weights): folded
            # into constants at export. The result stands for the parameter it came from.
            for t in tensors_out:
                self.names[t] = self.names[weight_in[0]]
            return out
        kind = "matmul" if name in _MATMUL_OPS else "conv" if name in _CONV_OPS else "other"
        transposed = kind == "conv" and _is_transposed(name, args)
        weights = []
        for i, t in enumerate(tensors_in):
            if t not in self.names:
                continue
            elements = t.numel()
            if name in _GATHER_OPS and i == 0:
                elements = min(elements, sum(o.numel() for o in tensors_out))
            weights.append(WeightRead(self.names[t], elements, kind != "other" and t.dim() >= 2))
        act_float, act_other, act_float_in = 0, 0, 0
        inputs = [t for t in tensors_in if t not in self.names]
        for i, t in enumerate(inputs + tensors_out):
            if t.is_floating_point() or t.is_complex():
                act_float += t.numel()
                act_float_in += t.numel() if i < len(inputs) else 0
            else:
                act_other += t.numel() * t.element_size()
        self.ops.append(
            OpRecord(str(func), self.stack[-1], kind, int(flops), tuple(weights), act_float, act_other, transposed,
                     act_float_in)
        )
        return out


class _DecodeAttention(TorchFunctionMode):
    """Run single-query ``scaled_dot_product_attention`` as the exported decode graph does."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            out = _one_query_attention(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


def _one_query_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
) -> torch.Tensor | None:
    """Attention of one query row: q scaled, softmax(q k^T + mask) v; None for any other call."""
    if q.shape[-2] != 1 or dropout_p or is_causal or enable_gqa or k.shape[-3] != q.shape[-3]:
        return None
    scores = torch.matmul(q * (q.shape[-1] ** -0.5 if scale is None else scale), k.transpose(-2, -1))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def _is_transposed(name: str, args: tuple) -> bool:
    """A transposed convolution: ``conv_transpose*``, or ``convolution`` with its flag (7th argument) set."""
    if name.startswith("conv_transpose"):
        return True
    return name in ("convolution", "_convolution") and len(args) > 6 and bool(args[6])
