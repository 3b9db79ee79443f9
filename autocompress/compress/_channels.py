"""Channel sets: which tensor slices belong to one prunable channel, and how to cut them.

A :class:`ChannelSet` is a group of interchangeable channels (a layer's FFN units, its
attention heads, a decoder stage's channels, a WN coupling's hidden channels). Each of its
:class:`Member` entries says where channel ``c`` lives in one tensor: which axis, and which
indices along it (one channel may span several: a gated pair ``c`` and ``H + c``, a head's
``head_dim`` rows, the q, k and v blocks). Removing a channel removes all of them.

A :class:`LayerCandidate` is one whole layer that may be dropped (depth pruning); its
``writers`` are the weights through which it writes into the residual stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from autocompress.compress._state import StateEditor, sorted_unique

IndexMap = Callable[[Tensor], Tensor]  # channel ids [n] -> tensor indices [n, k]


# --------------------------------------------------------------------------- index maps


def identity() -> IndexMap:
    """Channel ``c`` is index ``c``."""
    return lambda c: c.view(-1, 1)


def pair(half: int) -> IndexMap:
    """Channel ``c`` is indices ``c`` and ``half + c`` (gated units, GLU halves, res/skip)."""
    return lambda c: torch.stack([c, c + half], dim=1)


def block(size: int) -> IndexMap:
    """Channel ``c`` is indices ``c * size .. c * size + size - 1`` (one attention head)."""
    return lambda c: c.view(-1, 1) * size + torch.arange(size).view(1, -1)


def repeated(inner: IndexMap, stride: int, times: int) -> IndexMap:
    """``inner``'s indices repeated in ``times`` blocks of ``stride`` (packed q/k/v, per-layer cond)."""

    def index(c: Tensor) -> Tensor:
        base = inner(c)  # [n, k]
        return torch.cat([base + t * stride for t in range(times)], dim=1)

    return index


# --------------------------------------------------------------------------- sets


@dataclass(frozen=True)
class Member:
    """Where a channel lives in one tensor.

    Attributes:
        key: state-dict name; ``<m>.weight`` means the effective weight (weight norm resolved).
        axis: the tensor axis the channel indexes.
        index: maps channel ids to tensor indices along ``axis``.
        consumer: True when ``axis`` is the input-channel axis of module ``<m>``: the
            channel is then an input of that module (used for activation importance).
    """

    key: str
    axis: int
    index: IndexMap
    consumer: bool = False

    @property
    def module(self) -> str:
        """The module path of this tensor (its key without the parameter name)."""
        return self.key.rpartition(".")[0]


@dataclass
class ChannelSet:
    """Interchangeable channels that are kept or removed together.

    Attributes:
        name: unique within the group, e.g. ``"layers.3.heads"``.
        unit: the plan unit whose ratio applies (``PruneConfig.layers`` key).
        size: channels now.
        members: the tensors each channel spans.
        width: tensor channels per set channel (a head spans ``head_dim``), for the
            16-channel floor.
        groups: selection is made separately in ``groups`` equal contiguous parts of the
            set (per head), keeping the same count in each.
    """

    name: str
    unit: str
    size: int
    members: list[Member]
    width: int = 1
    groups: int = 1


@dataclass
class LayerCandidate:
    """One whole layer that depth pruning may drop.

    Attributes:
        name: e.g. ``"layers.5"``.
        prefix: state-dict prefix of everything the layer owns.
        writers: keys of the weights (and biases) writing the layer's result into the
            residual stream; their magnitude, output and gradient rank the layer.
    """

    name: str
    prefix: str
    writers: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- selection


def top_channels(scores: Tensor, keep: int, groups: int = 1) -> Tensor:
    """Sorted indices of the ``keep`` highest scores (``keep / groups`` per contiguous group)."""
    if groups == 1:
        return torch.sort(torch.topk(scores, keep).indices).values
    per = scores.numel() // groups
    k = keep // groups
    rows = torch.topk(scores.view(groups, per), k, dim=1).indices + torch.arange(groups).view(-1, 1) * per
    return torch.sort(rows.flatten()).values


def cut(editor: StateEditor, channel_set: ChannelSet, keep: Tensor) -> None:
    """Keep only channels ``keep`` of ``channel_set`` in every tensor it spans."""
    for member in channel_set.members:
        editor.select(member.key, member.axis, sorted_unique(member.index(keep)))


def slice_sizes(channel_set: ChannelSet) -> list[int]:
    """Tensor indices per channel in each member (for tests and parameter accounting)."""
    probe = torch.zeros(1, dtype=torch.long)
    return [m.index(probe).numel() for m in channel_set.members]


__all__ = [
    "ChannelSet",
    "IndexMap",
    "LayerCandidate",
    "Member",
    "block",
    "cut",
    "identity",
    "pair",
    "repeated",
    "slice_sizes",
    "top_channels",
]
