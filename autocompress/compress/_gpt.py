"""Structure of the T2S GPT for pruning and students (group ``gpt``).

Per layer ``l`` (keys ``h.layers.l.*``): attention heads (contiguous ``head_dim`` slices of
the q, k and v row blocks of ``in_proj_weight``, and the matching ``out_proj`` columns) and
FFN units (``linear1`` rows, ``linear2`` columns). Head width never changes when heads are
pruned, so the attention scale stays exact. Whole layers can be dropped.

Students also shrink the hidden size: the residual-stream channels (embeddings,
``bert_proj``, every layer's inputs, outputs and norms, the output layer) and, within
every head, the q/k/v channels; the attention scale ``1/sqrt(head_dim)`` is preserved for
the kept channels by scaling the query rows.
"""

from __future__ import annotations

import math

from autocompress.compress._channels import ChannelSet, LayerCandidate, Member, block, identity, repeated
from autocompress.compress._state import StateEditor
from autocompress.compress._structure import DepthPool, removed, scaled
from autocompress.compress.plan import StudentConfig
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.config import GPTConfig


def _layer(l: int) -> str:  # noqa: E741
    return f"h.layers.{l}"


class GPTStructure:
    name = "gpt"
    prefix = ""

    # ----- pruning

    def prune_sets(self, config: GPTConfig) -> list[ChannelSet]:
        sets = []
        hd = config.head_dim
        for l in range(config.n_layer):  # noqa: E741
            p, heads = _layer(l), config.heads_of(l)
            inner = heads * hd
            qkv = repeated(block(hd), inner, 3)
            sets.append(
                ChannelSet(
                    name=f"layers.{l}.heads", unit=f"layers.{l}.heads", size=heads, width=hd,
                    members=[
                        Member(f"{p}.self_attn.in_proj_weight", 0, qkv),
                        Member(f"{p}.self_attn.in_proj_bias", 0, qkv),
                        Member(f"{p}.self_attn.out_proj.weight", 1, block(hd), consumer=True),
                    ],
                )  # fmt: skip
            )
            sets.append(_ffn_set(config, l))
        return sets

    def resize(self, config: GPTConfig, sizes: dict[str, int], editor: StateEditor) -> GPTConfig:
        layers = range(config.n_layer)
        heads = tuple(sizes.get(f"layers.{i}.heads", config.heads_of(i)) for i in layers)
        ffn = tuple(sizes.get(f"layers.{i}.ffn", config.ffn_of(i)) for i in layers)
        return config.replace(
            layer_heads=None if set(heads) == {config.n_head} else heads,
            layer_ffn=None if set(ffn) == {config.ffn_dim} else ffn,
        )

    # ----- depth

    def depth_pools(self, config: GPTConfig, student: bool) -> list[DepthPool]:
        return [
            DepthPool(
                [
                    LayerCandidate(
                        f"layers.{l}", _layer(l),
                        [f"{_layer(l)}.self_attn.out_proj.weight", f"{_layer(l)}.linear2.weight"],
                    )  # fmt: skip
                    for l in range(config.n_layer)  # noqa: E741
                ]
            )
        ]

    def prune_depth_keep(self, config: GPTConfig, ratio: float) -> list[int]:
        return [max(1, config.n_layer - removed(config.n_layer, ratio))]

    def drop_layers(self, config: GPTConfig, editor: StateEditor, kept: list[list[int]]) -> GPTConfig:
        (keep,) = kept
        for l in range(config.n_layer):  # noqa: E741
            if l not in keep:
                editor.drop_prefix(_layer(l))
        editor.rename_prefixes({_layer(old): _layer(new) for new, old in enumerate(keep)})
        return config.replace(
            n_layer=len(keep),
            layer_heads=None if config.layer_heads is None else tuple(config.layer_heads[i] for i in keep),
            layer_ffn=None if config.layer_ffn is None else tuple(config.layer_ffn[i] for i in keep),
        )

    # ----- students

    def student_depth_keep(self, config: GPTConfig, student: StudentConfig) -> list[int]:
        return [scaled(config.n_layer, student.depth_mult)]

    def student_sets(
        self, config: GPTConfig, student: StudentConfig
    ) -> tuple[list[ChannelSet], dict[str, int]]:
        d, hd = config.hidden_dim, config.head_dim
        new_d = scaled(d, student.width_mult, multiple=config.n_head, minimum=config.n_head)
        new_hd = new_d // config.n_head
        sets = [self._hidden_set(config)]
        sizes = {"hidden": new_d}
        for l in range(config.n_layer):  # noqa: E741
            p, heads = _layer(l), config.heads_of(l)
            inner = heads * hd
            qkv = repeated(identity(), inner, 3)
            sets.append(
                ChannelSet(
                    name=f"layers.{l}.inner", unit=f"layers.{l}.inner", size=inner, groups=heads,
                    members=[
                        Member(f"{p}.self_attn.in_proj_weight", 0, qkv),
                        Member(f"{p}.self_attn.in_proj_bias", 0, qkv),
                        Member(f"{p}.self_attn.out_proj.weight", 1, identity(), consumer=True),
                    ],
                )  # fmt: skip
            )
            sizes[f"layers.{l}.inner"] = heads * new_hd
            sets.append(_ffn_set(config, l))
            sizes[f"layers.{l}.ffn"] = scaled(config.ffn_of(l), new_d / d)
        return sets, sizes

    def resize_student(self, config: GPTConfig, sizes: dict[str, int], editor: StateEditor) -> GPTConfig:
        """The student config; folds the head-width change into the query rows."""
        new_d = sizes["hidden"]
        new_hd = new_d // config.n_head
        if new_hd != config.head_dim:
            factor = math.sqrt(new_hd / config.head_dim)  # SDPA divides by sqrt(new_hd) now
            for l in range(config.n_layer):  # noqa: E741
                q_rows = config.heads_of(l) * new_hd
                for key in (f"{_layer(l)}.self_attn.in_proj_weight", f"{_layer(l)}.self_attn.in_proj_bias"):
                    editor.scale(key, factor, axis=0, index=slice(0, q_rows))
        ffn = tuple(sizes[f"layers.{l}.ffn"] for l in range(config.n_layer))  # noqa: E741
        uniform_ffn = len(set(ffn)) == 1
        if not new_d % config.n_head == 0:
            raise ConfigError(f"GPT student hidden size {new_d} is not divisible by {config.n_head} heads")
        return config.replace(
            hidden_dim=new_d,
            ffn_dim=ffn[0] if uniform_ffn else scaled(config.ffn_dim, new_d / config.hidden_dim),
            layer_ffn=None if uniform_ffn else ffn,
        )

    def _hidden_set(self, config: GPTConfig) -> ChannelSet:
        members = [
            Member("bert_proj.weight", 0, identity()),
            Member("bert_proj.bias", 0, identity()),
            Member("ar_text_embedding.word_embeddings.weight", 1, identity()),
            Member("ar_audio_embedding.word_embeddings.weight", 1, identity()),
            Member("ar_predict_layer.weight", 1, identity(), consumer=True),
        ]
        for l in range(config.n_layer):  # noqa: E741
            p = _layer(l)
            members += [
                Member(f"{p}.self_attn.in_proj_weight", 1, identity(), consumer=True),
                Member(f"{p}.self_attn.out_proj.weight", 0, identity()),
                Member(f"{p}.self_attn.out_proj.bias", 0, identity()),
                Member(f"{p}.linear1.weight", 1, identity(), consumer=True),
                Member(f"{p}.linear2.weight", 0, identity()),
                Member(f"{p}.linear2.bias", 0, identity()),
            ]
            norms = [f"{p}.{n}.{t}" for n in ("norm1", "norm2") for t in ("weight", "bias")]
            members += [Member(key, 0, identity()) for key in norms]
        return ChannelSet(name="hidden", unit="hidden", size=config.hidden_dim, members=members)


def _ffn_set(config: GPTConfig, l: int) -> ChannelSet:  # noqa: E741
    p = _layer(l)
    return ChannelSet(
        name=f"layers.{l}.ffn", unit=f"layers.{l}.ffn", size=config.ffn_of(l),
        members=[
            Member(f"{p}.linear1.weight", 0, identity()),
            Member(f"{p}.linear1.bias", 0, identity()),
            Member(f"{p}.linear2.weight", 1, identity(), consumer=True),
        ],
    )  # fmt: skip


__all__ = ["GPTStructure"]
