"""Structure of the reference (style) encoder for pruning and students (group ``ref_enc``).

``MelStyleEncoder`` has one width, ``style_hidden``, used three ways, each a channel set
that keeps the same count: ``spectral`` (the hidden layer between ``spectral.0.fc`` and
``spectral.3.fc``), ``stream`` (the residual stream from ``spectral.3.fc`` through the GLU
convs, whose output rows c and hidden + c form one gated channel, the attention and into
``fc.fc``) and ``attn`` (q/k/v channels, chosen per head so every head keeps the same
width). The attention temperature is ``sqrt(style_hidden)``; the change is folded into
``w_qs`` so the kept channels compute exactly what they did. The single unit is ``hidden``.
"""

from __future__ import annotations

import math

from autocompress.compress._channels import ChannelSet, Member, identity, pair
from autocompress.compress._state import StateEditor
from autocompress.compress._structure import DepthPool, scaled
from autocompress.compress.plan import StudentConfig
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.config import SoVITSConfig

P = "ref_enc"


class RefEncStructure:
    name = "ref_enc"
    prefix = P

    def prune_sets(self, config: SoVITSConfig) -> list[ChannelSet]:
        h = config.style_hidden
        spectral = [
            Member(f"{P}.spectral.0.fc.weight", 0, identity()),
            Member(f"{P}.spectral.0.fc.bias", 0, identity()),
            Member(f"{P}.spectral.3.fc.weight", 1, identity(), consumer=True),
        ]
        stream = [
            Member(f"{P}.spectral.3.fc.weight", 0, identity()),
            Member(f"{P}.spectral.3.fc.bias", 0, identity()),
            Member(f"{P}.slf_attn.fc.weight", 0, identity()),
            Member(f"{P}.slf_attn.fc.bias", 0, identity()),
            Member(f"{P}.fc.fc.weight", 1, identity(), consumer=True),
        ]
        for t in range(2):
            conv = f"{P}.temporal.{t}.conv1.conv"
            stream += [
                Member(f"{conv}.weight", 0, pair(h)),
                Member(f"{conv}.weight", 1, identity(), consumer=True),
                Member(f"{conv}.bias", 0, pair(h)),
            ]
        attn = [Member(f"{P}.slf_attn.fc.weight", 1, identity(), consumer=True)]
        for w in ("w_qs", "w_ks", "w_vs"):
            stream.append(Member(f"{P}.slf_attn.{w}.weight", 1, identity(), consumer=True))
            attn += [Member(f"{P}.slf_attn.{w}.{t}", 0, identity()) for t in ("weight", "bias")]
        return [
            ChannelSet("spectral", "hidden", h, spectral),
            ChannelSet("stream", "hidden", h, stream),
            ChannelSet("attn", "hidden", h, attn, groups=config.style_heads),
        ]

    def resize(self, config: SoVITSConfig, sizes: dict[str, int], editor: StateEditor) -> SoVITSConfig:
        widths = {sizes.get(n, config.style_hidden) for n in ("spectral", "stream", "attn")}
        if len(widths) != 1:
            raise ConfigError(f"ref_enc: spectral, stream and attn must keep one width, got {sorted(widths)}")
        (new,) = widths
        if new != config.style_hidden:  # scores divide by sqrt(style_hidden): keep them as they were
            factor = math.sqrt(new / config.style_hidden)
            editor.scale(f"{P}.slf_attn.w_qs.weight", factor)
            editor.scale(f"{P}.slf_attn.w_qs.bias", factor)
        return config.replace(style_hidden=new)

    resize_student = resize

    def depth_pools(self, config: SoVITSConfig, student: bool) -> list[DepthPool]:
        return []

    def prune_depth_keep(self, config: SoVITSConfig, ratio: float) -> list[int]:
        raise ConfigError("ref_enc has no layers to drop; depth_ratio must be 0")

    def drop_layers(self, config: SoVITSConfig, editor: StateEditor, kept: list[list[int]]) -> SoVITSConfig:
        raise ConfigError("ref_enc has no layers to drop")

    def student_depth_keep(self, config: SoVITSConfig, student: StudentConfig) -> list[int]:
        raise ConfigError("ref_enc students have no depth; depth_mult must be 1")

    def student_sets(
        self, config: SoVITSConfig, student: StudentConfig
    ) -> tuple[list[ChannelSet], dict[str, int]]:
        heads = config.style_heads
        new = scaled(config.style_hidden, student.width_mult, multiple=heads, minimum=heads)
        sets = self.prune_sets(config)
        return sets, {s.name: new for s in sets}


__all__ = ["RefEncStructure"]
