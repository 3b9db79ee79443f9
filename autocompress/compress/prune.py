"""Structured pruning: physically smaller tensors, within the plan's limits.

Each module group has a structure (:data:`STRUCTURES`) listing its prunable units. A
:class:`~autocompress.compress.plan.PruneConfig` gives every unit a ratio; this module
turns ratios into channel counts (rounded so that never more than asked is removed),
checks the limits, ranks channels by importance and cuts them from the state dict:

- at most 40 % of one unit removed (checked by ``PruneConfig`` itself);
- at least 16 channels left in any unit that had more (a module-level ratio stops at 16;
  an explicit per-unit ratio that goes below is an error);
- at most 60 % of the group's prunable channels removed in total, the channels of dropped
  layers included (a head counts as ``head_dim`` channels).

The parameter reduction is reported beside it (``PruneResult.removed_fraction``); it is
larger than the channel fraction where a layer's width appears on both of its axes.

Every violation is reported at once in one :class:`~autocompress.exceptions.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from torch import Tensor

from autocompress.compress._dec import DecStructure
from autocompress.compress._enc_p import EncPStructure
from autocompress.compress._engine import ContextFactory, naming_group, shrink_depth, shrink_width
from autocompress.compress._flow import FlowStructure
from autocompress.compress._gpt import GPTStructure
from autocompress.compress._ref_enc import RefEncStructure
from autocompress.compress._state import StateEditor, count_parameters
from autocompress.compress._structure import GroupStructure, removed
from autocompress.compress.plan import MAX_MODULE_PRUNE, MIN_CHANNELS, PruneConfig
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.voice import SOVITS_GROUP_MEMBERS

STRUCTURES: dict[str, GroupStructure] = {
    "gpt": GPTStructure(),
    "enc_p": EncPStructure(),
    "flow": FlowStructure(),
    "dec": DecStructure(),
    "ref_enc": RefEncStructure(),
}


@dataclass
class PruneResult:
    """What one pruning step did.

    Attributes:
        config: the model config after pruning.
        state: the pruned state dict.
        kept_layers: per depth pool, the old indices of the layers kept (empty: no depth change).
        kept_channels: per channel set (named after depth pruning), the old indices kept.
        params_before, params_after: parameters of the group, a v2Pro SoVITS's layers of it
            (``sv_emb``, ``prelu``, ``ge_to512``) included; weight norm's g and v counted.
        channels_before, channels_after: prunable channels of the group (heads as
            ``head_dim`` channels each); the 60 % limit applies to these.
    """

    config: Any
    state: dict[str, Tensor]
    kept_layers: list[list[int]] = field(default_factory=list)
    kept_channels: dict[str, Tensor] = field(default_factory=dict)
    params_before: int = 0
    params_after: int = 0
    channels_before: int = 0
    channels_after: int = 0

    @property
    def removed_fraction(self) -> float:
        """Fraction of the group's parameters removed."""
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0

    @property
    def removed_channel_fraction(self) -> float:
        """Fraction of the group's prunable channels removed (what the 60 % limit bounds)."""
        return 1.0 - self.channels_after / self.channels_before if self.channels_before else 0.0


def structure_of(group: str) -> GroupStructure:
    """The structure of a module group.

    Raises:
        ConfigError: unknown group.
    """
    if group not in STRUCTURES:
        raise ConfigError(f"unknown module group {group!r}; expected one of {sorted(STRUCTURES)}")
    return STRUCTURES[group]


def prunable_units(config: Any, group: str) -> list[str]:
    """Names of the units of ``group`` a ``PruneConfig.layers`` entry may address."""
    return sorted({s.unit for s in structure_of(group).prune_sets(config)})


def prune_counts(config: Any, group: str, prune: PruneConfig) -> dict[str, int]:
    """Channels each set keeps under ``prune``, with the limits applied.

    Raises:
        ConfigError: an unknown unit, or an explicit ratio leaving fewer than 16 channels.
    """
    sets = structure_of(group).prune_sets(config)
    units = {s.unit for s in sets}
    problems = []
    unknown = sorted(set(prune.layers) - units)
    if unknown:
        more = " ..." if len(units) > 8 else ""
        problems.append(f"unknown units {unknown} (valid: {sorted(units)[:8]}{more})")
    multiple = {u: max(s.groups for s in sets if s.unit == u) for u in units}
    counts = {}
    for s in sets:
        ratio = prune.ratio_of(s.unit)
        step = multiple[s.unit]
        keep = _round_up(s.size - removed(s.size, ratio), step)
        floor = min(MIN_CHANNELS, s.size * s.width)
        min_keep = _round_up(-(-floor // s.width), step)
        if keep < min_keep:
            if s.unit in prune.layers:
                problems.append(
                    f"{s.unit} at ratio {ratio:.2f} keeps {keep * s.width} of {s.size * s.width} channels; "
                    f"at least {MIN_CHANNELS} must remain"
                )
            keep = min(s.size, min_keep)
        counts[s.name] = keep
    if problems:
        raise ConfigError(f"{group}: invalid pruning: " + "; ".join(problems))
    return counts


def prune_state(
    config: Any,
    state: Mapping[str, Tensor],
    group: str,
    prune: PruneConfig,
    make_context: ContextFactory | None = None,
) -> PruneResult:
    """Prune one group of a model given as ``(config, state dict)``; the inputs are not modified.

    Args:
        config: ``GPTConfig`` or ``SoVITSConfig``.
        state: the model's state dict.
        group: module group name.
        prune: ratios, depth ratio and importance method.
        make_context: builds the importance context for data-driven methods.

    Raises:
        ConfigError: a limit is broken (all problems listed).
        CompressionError: data-driven importance without calibration.
    """
    structure = structure_of(group)
    editor = StateEditor(state)
    before = _group_parameters(state, group)
    factory = make_context or (lambda c, e: None)
    kept_layers: list[list[int]] = []
    channels_before = sum(s.size * s.width for s in structure.prune_sets(config))
    with naming_group(group):
        if prune.depth_ratio > 0:
            keep_counts = structure.prune_depth_keep(config, prune.depth_ratio)
            before_depth = config
            config, kept_layers = shrink_depth(
                structure, config, editor, keep_counts, False, prune.importance, factory
            )
            prune = renumbered(prune, structure, before_depth, config, kept_layers)
        counts = prune_counts(config, group, prune)
        sets = structure.prune_sets(config)
        kept_channels = shrink_width(config, editor, sets, counts, prune.importance, factory)
    config = structure.resize(config, {s.name: counts[s.name] for s in sets}, editor)
    new_state = editor.state_dict()
    after = _group_parameters(new_state, group)
    channels_after = sum(counts[s.name] * s.width for s in sets)
    result = PruneResult(
        config, new_state, kept_layers, kept_channels, before, after, channels_before, channels_after
    )
    if result.removed_channel_fraction > MAX_MODULE_PRUNE + 1e-9:
        raise ConfigError(
            f"{group}: pruning removes {result.removed_channel_fraction:.0%} of the module's channels "
            f"(layers dropped included); at most {MAX_MODULE_PRUNE:.0%} allowed (lower ratio or depth_ratio)"
        )
    return result


def renumbered(
    prune: PruneConfig, structure: GroupStructure, before: Any, after: Any, kept: list[list[int]],
    student: bool = False,
) -> PruneConfig:
    """``prune`` with its per-unit ratios renamed from the layers of ``before`` to those of ``after``.

    ``layers`` keys name the units of the teacher; depth pruning (or a student's depth, with
    ``student``) renumbers the layers it keeps (``layers.2`` may become ``layers.1``). Ratios of
    dropped layers are left out; units outside the depth pools keep their names.
    """
    if not prune.layers or not kept:
        return prune
    renames: dict[str, str | None] = {}  # old layer name -> new name, None when dropped
    pools = zip(structure.depth_pools(before, student), structure.depth_pools(after, student), kept)
    for old_pool, new_pool, keep in pools:
        renames.update({c.name: None for c in old_pool.candidates})
        for new, old in enumerate(keep):
            renames[old_pool.candidates[old].name] = new_pool.candidates[new].name
    layers = {}
    for unit, ratio in prune.layers.items():
        layer = next((name for name in renames if unit == name or unit.startswith(name + ".")), None)
        if layer is None:
            layers[unit] = ratio
        elif renames[layer] is not None:
            layers[renames[layer] + unit[len(layer) :]] = ratio
    return replace(prune, layers=layers)


def _group_parameters(state: Mapping[str, Tensor], group: str) -> int:
    """Parameters of ``group`` in ``state``: its own module and, in a v2Pro SoVITS, the top-level
    layers that belong to it (``sv_emb`` and ``prelu`` to ``ref_enc``, ``ge_to512`` to ``enc_p``)."""
    if group == "gpt":
        return count_parameters(state)
    return sum(count_parameters(state, member + ".") for member in SOVITS_GROUP_MEMBERS[group])


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


__all__ = ["PruneResult", "STRUCTURES", "prunable_units", "prune_counts", "prune_state", "renumbered", "structure_of"]
