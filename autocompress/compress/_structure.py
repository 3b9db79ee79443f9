"""The structure protocol each module group implements for pruning and students.

A structure knows, for its group, which channel sets and layers exist in a config, which
config fields change when they shrink, and which exact corrections keep the function
unchanged (attention temperatures that depend on a width). It never touches a module: it
edits ``(config, state dict)`` pairs through :class:`~autocompress.compress._state.StateEditor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from autocompress.compress._channels import ChannelSet, LayerCandidate
from autocompress.compress._state import StateEditor
from autocompress.compress.plan import StudentConfig


@dataclass
class DepthPool:
    """Layers of which some are kept (one encoder's layers, the GPT's layers...).

    ``keep_first``: keep the leading layers instead of ranking them (flow couplings).
    """

    candidates: list[LayerCandidate]
    keep_first: bool = False


class GroupStructure(Protocol):
    """How one module group is pruned and shrunk into a student.

    Lifecycle (driven by :mod:`autocompress.compress.prune` / ``students``): depth first
    (``depth_pools`` -> ranking -> ``drop_layers``), then width (``prune_sets`` or
    ``student_sets`` -> ranking -> cut -> ``resize``). ``config`` is the model config
    (``GPTConfig`` or ``SoVITSConfig``); every method returns new values.
    """

    name: str
    prefix: str  # state-dict prefix of the group's tensors ("" = the whole model)

    def prune_sets(self, config: Any) -> list[ChannelSet]:
        """Channel sets structured pruning may shrink."""

    def resize(self, config: Any, sizes: dict[str, int], editor: StateEditor) -> Any:
        """The config after every set ``name`` was cut to ``sizes[name]`` channels.

        Also applies exact corrections to ``editor`` (for example a temperature that
        depends on the width is folded into the query weights).
        """

    def depth_pools(self, config: Any, student: bool) -> list[DepthPool]:
        """Layers that may be dropped: for depth pruning (``student=False``) or students."""

    def prune_depth_keep(self, config: Any, ratio: float) -> list[int]:
        """Layers kept per pool when pruning ``ratio`` of the depth."""

    def drop_layers(self, config: Any, editor: StateEditor, kept: list[list[int]]) -> Any:
        """Keep only layers ``kept[p]`` (sorted) of each pool; renumber; return the config."""

    def student_depth_keep(self, config: Any, student: StudentConfig) -> list[int]:
        """Layers kept per pool for a student of ``student.depth_mult``."""

    def student_sets(self, config: Any, student: StudentConfig) -> tuple[list[ChannelSet], dict[str, int]]:
        """Channel sets a student shrinks, with the size each keeps for ``student.width_mult``."""

    def resize_student(self, config: Any, sizes: dict[str, int], editor: StateEditor) -> Any:
        """The student config after ``student_sets`` were cut to ``sizes`` (plus corrections)."""


def scaled(n: int, mult: float, multiple: int = 1, minimum: int = 1) -> int:
    """``n * mult`` rounded to the nearest multiple of ``multiple``, at least ``minimum``."""
    value = math.floor(n * mult / multiple + 0.5) * multiple  # half rounds up, not to even
    return max(minimum, min(n, value))


def removed(n: int, ratio: float) -> int:
    """How many of ``n`` channels a ratio removes (rounded down: never more than asked)."""
    return int(n * ratio + 1e-9)


__all__ = ["DepthPool", "GroupStructure", "removed", "scaled"]
