"""Structure of the coupling flow for pruning and students (group ``flow``).

Couplings sit at even indices of ``flow.flows`` (a Flip after each). Coupling ``k`` has one
hidden width H (``SoVITSConfig.flow_hidden_channels[k]``) shared by its WN stack; hidden
channel ``c`` spans ``pre`` row c, every ``in_layers.i`` row pair (c, H + c) of the gated
unit and column c, every ``res_skip_layers.i`` column c and its row pair (c, H + c)
(residual and skip halves; row c alone in the last layer), the ``cond_layer`` row pair of
every layer (2Hi + c, 2Hi + H + c) and ``post`` column c. Units are ``coupling.k``.

Depth keeps the first couplings (with their Flips); students shrink every H by
``width_mult`` and keep the first ``depth_mult`` of the couplings. Couplings go in pairs
(:func:`_paired`): each Flip reverses the channels, so an odd number dropped would leave the
latent reversed, a worse start than no flow at all.
"""

from __future__ import annotations

from autocompress.compress._channels import ChannelSet, LayerCandidate, Member, identity, pair, repeated
from autocompress.compress._state import StateEditor
from autocompress.compress._structure import DepthPool, removed, scaled
from autocompress.compress.plan import StudentConfig
from autocompress.models.gpt_sovits.config import SoVITSConfig


def _coupling(k: int) -> str:
    return f"flow.flows.{2 * k}"


def _paired(n_flows: int, keep: int) -> int:
    """``keep`` couplings of ``n_flows``, one more when that would drop an odd number.

    Keeping the first couplings with as many Flips as the teacher dropped equals the teacher
    with the dropped couplings zeroed (their Flips cancel in pairs); an odd number dropped
    leaves one Flip over, which reverses the latent's channels.
    """
    return keep + (n_flows - keep) % 2


class FlowStructure:
    name = "flow"
    prefix = "flow"

    def prune_sets(self, config: SoVITSConfig) -> list[ChannelSet]:
        sets = []
        n_layers = config.flow_wn_layers
        for k, h in enumerate(config.flow_hidden_channels):
            p = _coupling(k)
            members = [
                Member(f"{p}.pre.weight", 0, identity()),
                Member(f"{p}.pre.bias", 0, identity()),
                Member(f"{p}.post.weight", 1, identity(), consumer=True),
            ]
            for i in range(n_layers):
                out = identity() if i == n_layers - 1 else pair(h)
                members += [
                    Member(f"{p}.enc.in_layers.{i}.weight", 0, pair(h)),
                    Member(f"{p}.enc.in_layers.{i}.weight", 1, identity(), consumer=True),
                    Member(f"{p}.enc.in_layers.{i}.bias", 0, pair(h)),
                    Member(f"{p}.enc.res_skip_layers.{i}.weight", 0, out),
                    Member(f"{p}.enc.res_skip_layers.{i}.weight", 1, identity(), consumer=True),
                    Member(f"{p}.enc.res_skip_layers.{i}.bias", 0, out),
                ]
            if config.gin_channels:
                cond = repeated(pair(h), 2 * h, n_layers)
                members += [Member(f"{p}.enc.cond_layer.{t}", 0, cond) for t in ("weight", "bias")]
            sets.append(ChannelSet(name=f"coupling.{k}", unit=f"coupling.{k}", size=h, members=members))
        return sets

    def resize(self, config: SoVITSConfig, sizes: dict[str, int], editor: StateEditor) -> SoVITSConfig:
        hidden = tuple(sizes.get(f"coupling.{k}", h) for k, h in enumerate(config.flow_hidden_channels))
        return config.replace(flow_hidden=None if set(hidden) == {config.hidden_channels} else hidden)

    resize_student = resize

    # ----- depth: the first couplings stay

    def depth_pools(self, config: SoVITSConfig, student: bool) -> list[DepthPool]:
        candidates = [LayerCandidate(f"coupling.{k}", _coupling(k), []) for k in range(config.n_flows)]
        return [DepthPool(candidates, keep_first=True)]

    def prune_depth_keep(self, config: SoVITSConfig, ratio: float) -> list[int]:
        return [_paired(config.n_flows, max(1, config.n_flows - removed(config.n_flows, ratio)))]

    def drop_layers(self, config: SoVITSConfig, editor: StateEditor, kept: list[list[int]]) -> SoVITSConfig:
        (keep,) = kept
        for k in range(config.n_flows):
            if k not in keep:
                editor.drop_prefix(_coupling(k))
        editor.rename_prefixes({_coupling(old): _coupling(new) for new, old in enumerate(keep)})
        hidden = config.flow_hidden_channels
        return config.replace(
            n_flows=len(keep),
            flow_hidden=None if config.flow_hidden is None else tuple(hidden[k] for k in keep),
        )

    def student_depth_keep(self, config: SoVITSConfig, student: StudentConfig) -> list[int]:
        return [_paired(config.n_flows, scaled(config.n_flows, student.depth_mult))]

    def student_sets(
        self, config: SoVITSConfig, student: StudentConfig
    ) -> tuple[list[ChannelSet], dict[str, int]]:
        sets = self.prune_sets(config)
        return sets, {s.name: scaled(s.size, student.width_mult) for s in sets}


__all__ = ["FlowStructure"]
