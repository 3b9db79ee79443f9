"""Structure of the SoVITS text encoder for pruning and students (group ``enc_p``).

Its three transformer encoders (``encoder_ssl``, ``encoder_text``, ``encoder2``; VITS
relative attention, post-norm, convolutional FFN) are pruned per layer: FFN units
(``conv_1`` rows, ``conv_2`` columns) and attention heads (head-major channel layout:
head h is channels ``h * hd .. h * hd + hd - 1`` of ``conv_q/k/v`` and of ``conv_o``'s
input). Heads share the ``emb_rel_k/v`` tables ``[1, 2w+1, hd]``, which therefore keep
their shape; the head width stays ``hidden_channels // n_heads``. Units are
``<encoder>.<layer>.ffn`` and ``<encoder>.<layer>.heads``. The MRTE block, the
projections and the residual width are left alone (they fix enc_p's interface).

Students shrink every FFN by ``width_mult`` (``filter_channels``: upstream's shape) and
keep the most important ``depth_mult`` of each encoder's layers (``n_layers``).
"""

from __future__ import annotations

from autocompress.compress._channels import ChannelSet, LayerCandidate, Member, block, identity
from autocompress.compress._state import StateEditor
from autocompress.compress._structure import DepthPool, scaled
from autocompress.compress.plan import StudentConfig
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.config import ENC_P_ENCODERS, SoVITSConfig


def _layers(config: SoVITSConfig) -> list[tuple[str, int]]:
    """(encoder, layer) of every enc_p transformer layer, in config-tuple order."""
    counts = (config.n_layers // 2, config.n_layers, config.n_layers // 2)
    return [(e, l) for e, n in zip(ENC_P_ENCODERS, counts) for l in range(n)]  # noqa: E741


class EncPStructure:
    name = "enc_p"
    prefix = "enc_p"

    def prune_sets(self, config: SoVITSConfig) -> list[ChannelSet]:
        hd = config.hidden_channels // config.n_heads
        sets = []
        for enc, l in _layers(config):  # noqa: E741
            attn = f"enc_p.{enc}.attn_layers.{l}"
            members = [Member(f"{attn}.conv_o.weight", 1, block(hd), consumer=True)]
            for conv in ("conv_q", "conv_k", "conv_v"):
                members += [Member(f"{attn}.{conv}.{t}", 0, block(hd)) for t in ("weight", "bias")]
            heads = config.enc_heads_of(enc, l)
            sets.append(ChannelSet(f"{enc}.{l}.heads", f"{enc}.{l}.heads", heads, members, width=hd))
            sets.append(_ffn_set(config, enc, l))
        return sets

    def resize(self, config: SoVITSConfig, sizes: dict[str, int], editor: StateEditor) -> SoVITSConfig:
        layers = _layers(config)
        heads = tuple(sizes.get(f"{e}.{l}.heads", config.enc_heads_of(e, l)) for e, l in layers)  # noqa: E741
        ffn = tuple(sizes.get(f"{e}.{l}.ffn", config.enc_filter_of(e, l)) for e, l in layers)  # noqa: E741
        return config.replace(
            enc_layer_heads=None if set(heads) == {config.n_heads} else heads,
            enc_layer_filter=None if set(ffn) == {config.filter_channels} else ffn,
        )

    # ----- depth: students only (layers of each encoder)

    def depth_pools(self, config: SoVITSConfig, student: bool) -> list[DepthPool]:
        if not student:
            return []
        pools = []
        for enc, n in zip(ENC_P_ENCODERS, (config.n_layers // 2, config.n_layers, config.n_layers // 2)):
            p = f"enc_p.{enc}"
            candidates = [
                LayerCandidate(
                    f"{enc}.{l}",
                    p,
                    [f"{p}.attn_layers.{l}.conv_o.weight", f"{p}.ffn_layers.{l}.conv_2.weight"],
                )
                for l in range(n)  # noqa: E741
            ]
            pools.append(DepthPool(candidates))
        return pools

    def prune_depth_keep(self, config: SoVITSConfig, ratio: float) -> list[int]:
        raise ConfigError("enc_p: depth pruning is not supported; use a student with depth_mult < 1")

    def student_depth_keep(self, config: SoVITSConfig, student: StudentConfig) -> list[int]:
        n = scaled(config.n_layers, student.depth_mult, minimum=2)
        return [n // 2, n, n // 2]

    def drop_layers(self, config: SoVITSConfig, editor: StateEditor, kept: list[list[int]]) -> SoVITSConfig:
        old_layers = _layers(config)
        mapping = {}
        for enc, keep in zip(ENC_P_ENCODERS, kept):
            n = sum(1 for e, _ in old_layers if e == enc)
            for l in range(n):  # noqa: E741
                for part in ("attn_layers", "norm_layers_1", "ffn_layers", "norm_layers_2"):
                    old = f"enc_p.{enc}.{part}.{l}"
                    if l in keep:
                        mapping[old] = f"enc_p.{enc}.{part}.{keep.index(l)}"
                    else:
                        editor.drop_prefix(old)
        editor.rename_prefixes(mapping)
        index = {(e, l): i for i, (e, l) in enumerate(old_layers)}  # noqa: E741
        order = [index[(enc, l)] for enc, keep in zip(ENC_P_ENCODERS, kept) for l in keep]  # noqa: E741
        n_layers = len(kept[1])
        if [len(k) for k in kept] != [n_layers // 2, n_layers, n_layers // 2]:
            counts = [len(k) for k in kept]
            raise ConfigError(f"enc_p layers kept per encoder must be n//2, n, n//2; got {counts}")

        def pick(values: tuple[int, ...] | None) -> tuple[int, ...] | None:
            return None if values is None else tuple(values[i] for i in order)

        return config.replace(
            n_layers=n_layers,
            enc_layer_heads=pick(config.enc_layer_heads),
            enc_layer_filter=pick(config.enc_layer_filter),
        )

    def student_sets(
        self, config: SoVITSConfig, student: StudentConfig
    ) -> tuple[list[ChannelSet], dict[str, int]]:
        sets = [_ffn_set(config, e, l) for e, l in _layers(config)]  # noqa: E741
        if config.enc_layer_filter is None:
            target = scaled(config.filter_channels, student.width_mult)
            return sets, {s.name: target for s in sets}
        return sets, {s.name: scaled(s.size, student.width_mult) for s in sets}

    def resize_student(
        self, config: SoVITSConfig, sizes: dict[str, int], editor: StateEditor
    ) -> SoVITSConfig:
        if config.enc_layer_filter is None:
            return config.replace(filter_channels=next(iter(sizes.values())))
        return self.resize(config, sizes, editor)


def _ffn_set(config: SoVITSConfig, enc: str, l: int) -> ChannelSet:  # noqa: E741
    ffn = f"enc_p.{enc}.ffn_layers.{l}"
    return ChannelSet(
        f"{enc}.{l}.ffn", f"{enc}.{l}.ffn", config.enc_filter_of(enc, l),
        [
            Member(f"{ffn}.conv_1.weight", 0, identity()),
            Member(f"{ffn}.conv_1.bias", 0, identity()),
            Member(f"{ffn}.conv_2.weight", 1, identity(), consumer=True),
        ],
    )  # fmt: skip


__all__ = ["EncPStructure"]
