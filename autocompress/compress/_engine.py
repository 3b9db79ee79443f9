"""Shared steps of pruning and student initialisation: rank, then cut layers or channels."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from autocompress.compress._channels import ChannelSet, cut, top_channels
from autocompress.compress._state import StateEditor
from autocompress.compress._structure import GroupStructure
from autocompress.compress.importance import ImportanceContext, channel_scores, layer_scores
from autocompress.exceptions import CompressionError

# Given the current config and state, the importance context for data-driven ranking (or None).
ContextFactory = Callable[[Any, StateEditor], ImportanceContext | None]


def shrink_depth(
    structure: GroupStructure,
    config: Any,
    editor: StateEditor,
    keep_counts: Sequence[int],
    pools_for_student: bool,
    method: str,
    make_context: ContextFactory,
) -> tuple[Any, list[list[int]]]:
    """Keep ``keep_counts[p]`` layers of each depth pool; return the config and the kept ids."""
    pools = structure.depth_pools(config, pools_for_student)
    kept: list[list[int]] = []
    for pool, n_keep in zip(pools, keep_counts):
        n = len(pool.candidates)
        if n_keep >= n:
            kept.append(list(range(n)))
        elif pool.keep_first:
            kept.append(list(range(n_keep)))
        else:
            context = _context(method, make_context, config, editor)
            scores = layer_scores(method, pool.candidates, editor, context)
            kept.append(sorted(torch.topk(scores, n_keep).indices.tolist()))
    if all(len(k) == len(p.candidates) for k, p in zip(kept, pools)):
        return config, kept
    return structure.drop_layers(config, editor, kept), kept


def shrink_width(
    config: Any,
    editor: StateEditor,
    sets: Sequence[ChannelSet],
    sizes: dict[str, int],
    method: str,
    make_context: ContextFactory,
) -> dict[str, Tensor]:
    """Cut every set to ``sizes[name]`` channels by importance; return the kept indices."""
    shrinking = [s for s in sets if sizes.get(s.name, s.size) < s.size]
    if not shrinking:
        return {}
    scores = channel_scores(method, shrinking, editor, _context(method, make_context, config, editor))
    kept = {s.name: top_channels(scores[s.name], sizes[s.name], s.groups) for s in shrinking}
    for s in shrinking:
        cut(editor, s, kept[s.name])
    return kept


@contextmanager
def naming_group(group: str) -> Iterator[None]:
    """Prefix the message of a :class:`CompressionError` raised inside with the module group's name."""
    try:
        yield
    except CompressionError as e:
        raise CompressionError(f"{group}: {e}") from e


def _context(
    method: str, make_context: ContextFactory, config: Any, editor: StateEditor
) -> ImportanceContext | None:
    return None if method == "l1" else make_context(config, editor)


__all__ = ["ContextFactory", "naming_group", "shrink_depth", "shrink_width"]
