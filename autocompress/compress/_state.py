"""Editing a model's state dict: slicing channels, renaming layers, weight norm resolved.

Pruning and student initialisation work on ``(config, state_dict)`` pairs, never on a live
module: the new model is then built fresh from the new config and loads the edited state,
so the teacher's modules (and their weight-norm parametrization classes) are never touched.

Weight-normed layers store ``<m>.parametrizations.weight.original0`` (g, one norm per index
of axis 0) and ``.original1`` (v). The editor hands out the *effective* weight
``W = g * v / ||v||`` under the name ``<m>.weight``, lets callers slice it, and writes it
back as ``g = ||W||``, ``v = W``; the new model therefore computes exactly the sliced W
(strip, prune, re-apply).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from autocompress.exceptions import CompressionError

WN_G = ".parametrizations.weight.original0"
WN_V = ".parametrizations.weight.original1"


def weight_norm_of(w: Tensor) -> Tensor:
    """The L2 norm over every axis but 0, shaped like weight norm's g ``[d0, 1, ...]``."""
    return w.flatten(1).norm(dim=1).view(-1, *([1] * (w.dim() - 1)))


def weight_norm_parts(w: Tensor) -> tuple[Tensor, Tensor]:
    """Weight norm's ``(g, v)`` for the effective weight ``w``: ``g = ||w||`` per index of axis 0,
    ``v = w``; a row that is all zero (pruned, or rounded away at low bit widths) gets ``g = 0``
    and a non-zero ``v``, since ``g * v / ||v||`` would be 0/0 there."""
    g = weight_norm_of(w)
    v = w.detach().clone()
    dead = (g.flatten() == 0).nonzero().flatten()
    if dead.numel():
        v[dead] = 1.0
    return g, v


class StateEditor:
    """A copy-on-write view of a state dict that can be sliced along any axis.

    Tensors of the source dict are never modified: every edit makes a new tensor.
    """

    def __init__(self, state: Mapping[str, Tensor]) -> None:
        self._state: dict[str, Tensor] = dict(state)
        self._weights: dict[str, Tensor] = {}  # effective weights of weight-normed layers, by "<m>.weight"

    # ----- reading

    def is_weight_normed(self, key: str) -> bool:
        return key.endswith(".weight") and key[: -len(".weight")] + WN_G in self._state

    def __contains__(self, key: str) -> bool:
        return key in self._state or key in self._weights or self.is_weight_normed(key)

    def get(self, key: str) -> Tensor:
        """The tensor ``key``; ``<m>.weight`` of a weight-normed layer is its effective weight."""
        if key in self._weights:
            return self._weights[key]
        if self.is_weight_normed(key):
            prefix = key[: -len(".weight")]
            g, v = self._state[prefix + WN_G], self._state[prefix + WN_V]
            w = (g * (v / weight_norm_of(v))).detach()
            self._weights[key] = w
            return w
        if key not in self._state:
            raise CompressionError(f"state dict has no tensor {key!r}; the model does not match its config")
        return self._state[key]

    def keys(self) -> list[str]:
        return list(self._state)

    # ----- editing

    def set(self, key: str, value: Tensor) -> None:
        if key in self._weights or self.is_weight_normed(key):
            self._weights[key] = value
        else:
            self._state[key] = value

    def select(self, key: str, axis: int, index: Tensor) -> None:
        """Keep only ``index`` (sorted, unique) along ``axis`` of tensor ``key``."""
        t = self.get(key)
        if index.numel() and int(index.max()) >= t.shape[axis]:
            raise CompressionError(
                f"cannot keep index {int(index.max())} of axis {axis} of {key!r} (size {t.shape[axis]})"
            )
        self.set(key, t.index_select(axis, index.to(t.device)))

    def scale(self, key: str, factor: float, axis: int | None = None, index: Tensor | None = None) -> None:
        """Multiply tensor ``key`` (or the ``index`` slice of ``axis``) by ``factor``."""
        t = self.get(key).clone()
        if axis is None:
            t = t * factor
        else:
            sl = [slice(None)] * t.dim()
            sl[axis] = index
            t[tuple(sl)] = t[tuple(sl)] * factor
        self.set(key, t)

    def drop_prefix(self, prefix: str) -> None:
        """Remove every tensor under ``prefix.``."""
        for key in [k for k in self._state if k.startswith(prefix + ".")]:
            del self._state[key]
        for key in [k for k in self._weights if k.startswith(prefix + ".")]:
            del self._weights[key]

    def rename_prefixes(self, mapping: Mapping[str, str]) -> None:
        """Rename key prefixes at once (``{"h.layers.3": "h.layers.1", ...}``); others stay."""

        def renamed(key: str) -> str:
            for old, new in mapping.items():
                if key.startswith(old + "."):
                    return new + key[len(old) :]
            return key

        self._state = {renamed(k): v for k, v in self._state.items()}
        self._weights = {renamed(k): v for k, v in self._weights.items()}

    # ----- result

    def state_dict(self) -> dict[str, Tensor]:
        """The edited state dict, effective weights written back as weight norm (g, v)."""
        out = dict(self._state)
        for key, w in self._weights.items():
            prefix = key[: -len(".weight")]
            g, v = weight_norm_parts(w)
            out[prefix + WN_G] = g
            out[prefix + WN_V] = v
        return out


def count_parameters(state: Mapping[str, Tensor], prefix: str = "") -> int:
    """Number of elements in the tensors of ``state`` under ``prefix`` (all when empty)."""
    return sum(t.numel() for k, t in state.items() if not prefix or k.startswith(prefix))


def clone_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A detached deep copy of a state dict."""
    return {k: v.detach().clone() for k, v in state.items()}


def effective_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The state dict with every weight-normed layer's g, v replaced by its plain ``weight``."""
    editor = StateEditor(state)
    out = {}
    for key in state:
        if key.endswith(WN_G):
            prefix = key[: -len(WN_G)]
            out[prefix + ".weight"] = editor.get(prefix + ".weight")
        elif not key.endswith(WN_V):
            out[key] = state[key]
    return out


@torch.no_grad()
def sorted_unique(index: Tensor) -> Tensor:
    """Flatten, sort and deduplicate an index tensor (long)."""
    return torch.unique(index.flatten().long(), sorted=True)


__all__ = [
    "StateEditor",
    "WN_G",
    "WN_V",
    "clone_state",
    "count_parameters",
    "effective_state",
    "sorted_unique",
    "weight_norm_of",
    "weight_norm_parts",
]
