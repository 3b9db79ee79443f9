"""Ranking channels and layers: which ones pruning and students keep.

Three methods (``PruneConfig.importance``):

- ``"l1"`` (default, no data): the L1 magnitude of every tensor slice a channel spans,
  each tensor's scores divided by their mean so that large and small layers count alike.
  A layer's score is the mean magnitude of the weights writing its residual update.
- ``"activation"``: mean |activation| of the channel where a module consumes it (the
  input of the next layer), over calibration batches; a layer's score is the mean
  magnitude of its residual writers' outputs.
- ``"taylor"``: first-order Taylor estimate of the loss change when the channel's slices
  are removed, ``|sum(w * dL/dw)|`` per batch, summed over batches.

Calibration batches are callables ``fn(group_module) -> Tensor``: they run the group's
module (the GPT, or ``sovits.dec`` ...) on fixed inputs and return a scalar loss, or any
output tensor, in which case ``0.5 * mean(output^2)`` is the loss for Taylor scores. They
run on a scratch copy of the model, never on the teacher.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from autocompress.compress._channels import ChannelSet, LayerCandidate, Member
from autocompress.compress._state import StateEditor
from autocompress.exceptions import CompressionError

CalibrationBatch = Callable[[nn.Module], Tensor]
Calibration = Mapping[str, Sequence[CalibrationBatch]]
_EPS = 1e-12


@dataclass
class ImportanceContext:
    """What data-driven importance needs: a way to build the current model and run it.

    Attributes:
        build: returns a fresh module that the calibration batches run (the GPT, or one
            SoVITS group's module) holding the current state.
        batches: the group's calibration batches.
        prefix: what the state-dict keys of that module lack (``"dec."`` for the
            decoder built alone; ``""`` for the GPT).
    """

    build: Callable[[], nn.Module]
    batches: Sequence[CalibrationBatch]
    prefix: str = ""


# --------------------------------------------------------------------------- public


def channel_scores(
    method: str,
    sets: Sequence[ChannelSet],
    editor: StateEditor,
    context: ImportanceContext | None = None,
) -> dict[str, Tensor]:
    """Score every channel of every set (higher = more important).

    Raises:
        CompressionError: a data-driven method without calibration batches.
    """
    if method == "l1":
        return {s.name: _l1_set(s, editor) for s in sets}
    _need_batches(method, context)
    if method == "activation":
        return _activation_sets(sets, context)
    if method == "taylor":
        return _taylor_sets(sets, context)
    raise CompressionError(f"unknown importance method {method!r}; expected l1, activation or taylor")


def layer_scores(
    method: str,
    candidates: Sequence[LayerCandidate],
    editor: StateEditor,
    context: ImportanceContext | None = None,
) -> Tensor:
    """Score whole layers (``[len(candidates)]``, higher = more important)."""
    if method == "l1":
        return torch.tensor(
            [
                sum(float(editor.get(k).abs().mean()) for k in c.writers if k.endswith("weight"))
                for c in candidates
            ]
        )
    _need_batches(method, context)
    if method == "activation":
        return _activation_layers(candidates, context)
    if method == "taylor":
        return _taylor_layers(candidates, context)
    raise CompressionError(f"unknown importance method {method!r}; expected l1, activation or taylor")


# --------------------------------------------------------------------------- l1


def _per_channel(member: Member, per_index: Tensor, size: int) -> Tensor:
    """Sum a per-index vector over each channel's indices -> ``[size]``, on the CPU (where scores are ranked)."""
    index = member.index(torch.arange(size))  # [size, k]
    return per_index.detach().cpu()[index].sum(dim=1)


def _reduce_to_axis(t: Tensor, axis: int) -> Tensor:
    dims = [d for d in range(t.dim()) if d != axis]
    return t.sum(dim=dims) if dims else t


def _l1_along(t: Tensor, axis: int) -> Tensor:
    """L1 norm of every slice of ``t`` along ``axis`` -> ``[t.shape[axis]]``."""
    dims = [d for d in range(t.dim()) if d != axis]
    t = t.detach().float()
    return torch.linalg.vector_norm(t, ord=1, dim=dims) if dims else t.abs()


def _l1_set(channel_set: ChannelSet, editor: StateEditor) -> Tensor:
    total = torch.zeros(channel_set.size)
    for member in channel_set.members:
        magnitude = _l1_along(editor.get(member.key), member.axis)
        score = _per_channel(member, magnitude, channel_set.size)
        total += score / (score.mean() + _EPS)
    return total


# --------------------------------------------------------------------------- data-driven


def _need_batches(method: str, context: ImportanceContext | None) -> None:
    if context is None or not context.batches:
        raise CompressionError(
            f"importance {method!r} needs calibration batches for this group; pass calibration= "
            "to compress() or use importance='l1'"
        )


def _channel_dim(module: nn.Module) -> int:
    return 1 if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)) else -1


def _scratch(context: ImportanceContext, plain_weights: bool) -> nn.Module:
    root = context.build()
    root.eval()
    if plain_weights:  # gradients on effective weights, keyed like the editor's "<m>.weight"
        for module in list(root.modules()):
            for name in list(getattr(module, "parametrizations", {}) or {}):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return root


def _run_batches(context: ImportanceContext, root: nn.Module, each: Callable[[Tensor], None]) -> None:
    for batch in context.batches:
        each(batch(root))


def _local(context: ImportanceContext, key: str) -> str:
    """A state-dict key (or module path) as seen from the scratch module."""
    return key[len(context.prefix) :] if key.startswith(context.prefix) else key


def _activation_sets(sets: Sequence[ChannelSet], context: ImportanceContext) -> dict[str, Tensor]:
    root = _scratch(context, plain_weights=False)
    means: dict[str, Tensor] = {}
    handles = []

    def recorder(path: str, dim: int):  # noqa: ANN202
        def hook(_: nn.Module, args: tuple) -> None:
            x = args[0].detach().float().abs()
            x = x.movedim(dim, -1).reshape(-1, x.shape[dim]).mean(dim=0)  # [C_in]
            means[path] = means.get(path, 0) + x

        return hook

    paths = {m.module for s in sets for m in s.members if m.consumer}
    for path in paths:
        module = root.get_submodule(_local(context, path))
        handles.append(module.register_forward_pre_hook(recorder(path, _channel_dim(module))))
    try:
        with torch.no_grad():
            _run_batches(context, root, lambda out: None)
    finally:
        for h in handles:
            h.remove()
    scores = {}
    for s in sets:
        total = torch.zeros(s.size)
        consumers = [m for m in s.members if m.consumer and m.module in means]
        if not consumers:
            raise CompressionError(f"no activation reached channel set {s.name!r} during calibration")
        for member in consumers:
            total += _per_channel(member, means[member.module], s.size)
        scores[s.name] = total
    return scores


def _loss_of(out: Tensor) -> Tensor:
    return out if out.dim() == 0 else 0.5 * out.float().pow(2).mean()


def _taylor_products(keys: set[str], context: ImportanceContext) -> list[dict[str, Tensor]]:
    """Per batch, ``w * dL/dw`` for every parameter in ``keys``."""
    root = _scratch(context, plain_weights=True)
    params = {context.prefix + name: p for name, p in root.named_parameters()}
    missing = sorted(k for k in keys if k not in params)
    if missing:
        raise CompressionError(f"Taylor importance: the model has no parameters {missing[:3]}")
    products: list[dict[str, Tensor]] = []

    def each(out: Tensor) -> None:
        root.zero_grad(set_to_none=True)
        _loss_of(out).backward()
        products.append(
            {k: (params[k].detach() * params[k].grad).float() if params[k].grad is not None
             else torch.zeros_like(params[k], dtype=torch.float32) for k in keys}
        )  # fmt: skip

    _run_batches(context, root, each)
    return products


def _taylor_sets(sets: Sequence[ChannelSet], context: ImportanceContext) -> dict[str, Tensor]:
    products = _taylor_products({m.key for s in sets for m in s.members}, context)
    scores = {}
    for s in sets:
        total = torch.zeros(s.size)
        for per_batch in products:
            delta = torch.zeros(s.size)
            for member in s.members:
                delta += _per_channel(member, _reduce_to_axis(per_batch[member.key], member.axis), s.size)
            total += delta.abs()
        scores[s.name] = total
    return scores


def _activation_layers(candidates: Sequence[LayerCandidate], context: ImportanceContext) -> Tensor:
    root = _scratch(context, plain_weights=False)
    totals = torch.zeros(len(candidates))
    handles = []

    def recorder(i: int):  # noqa: ANN202
        def hook(_: nn.Module, __: tuple, output: Tensor) -> None:
            totals[i] += float(output.detach().float().abs().mean())

        return hook

    for i, c in enumerate(candidates):
        for path in sorted({k.rpartition(".")[0] for k in c.writers}):
            handles.append(root.get_submodule(_local(context, path)).register_forward_hook(recorder(i)))
    try:
        with torch.no_grad():
            _run_batches(context, root, lambda out: None)
    finally:
        for h in handles:
            h.remove()
    return totals


def _taylor_layers(candidates: Sequence[LayerCandidate], context: ImportanceContext) -> Tensor:
    products = _taylor_products({k for c in candidates for k in c.writers}, context)
    totals = torch.zeros(len(candidates))
    for per_batch in products:
        for i, c in enumerate(candidates):
            totals[i] += abs(float(sum(per_batch[k].sum() for k in c.writers)))
    return totals


__all__ = [
    "Calibration",
    "CalibrationBatch",
    "ImportanceContext",
    "channel_scores",
    "layer_scores",
]
