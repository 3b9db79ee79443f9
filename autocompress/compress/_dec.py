"""Structure of the HiFi-GAN decoder for pruning and students (group ``dec``).

Stage widths are ``SoVITSConfig.decoder_channels``: ``conv_pre``'s output (also ``cond``'s),
then every ``ups.i`` output. A stage's channels run through its upsampling layer's output
(a ConvTranspose1d ``[in, out, k]``: output channels on axis 1, weight-norm g per *input*
channel, handled by the state editor), the stage's resblocks (both convolutions of each,
rows and columns: ResBlock1 keeps its width) and the next consumer (``ups.i+1`` input
channels on axis 0, or ``conv_post``'s columns). Units are ``conv_pre`` and ``ups.0`` ...

Students shrink ``upsample_initial_channel`` (uniform halving, upstream's shape) and keep
the most important resblock kernels per stage (``depth_mult``).
"""

from __future__ import annotations

from autocompress.compress._channels import ChannelSet, LayerCandidate, Member, identity
from autocompress.compress._state import StateEditor
from autocompress.compress._structure import DepthPool, scaled
from autocompress.compress.plan import StudentConfig
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.config import SoVITSConfig

P = "dec"


def stage_units(config: SoVITSConfig) -> list[str]:
    """Unit names of the decoder stages: ``conv_pre``, ``ups.0`` ... ``ups.N-1``."""
    return ["conv_pre"] + [f"ups.{i}" for i in range(len(config.upsample_rates))]


class DecStructure:
    name = "dec"
    prefix = P

    def prune_sets(self, config: SoVITSConfig) -> list[ChannelSet]:
        widths = config.decoder_channels
        n_stages = len(config.upsample_rates)
        n_kernels = len(config.resblock_kernel_sizes)
        sets = []
        for s, unit in enumerate(stage_units(config)):
            members: list[Member] = []
            if s == 0:
                producers = ["conv_pre", "cond"] if config.gin_channels else ["conv_pre"]
                keys = [f"{P}.{m}.{t}" for m in producers for t in ("weight", "bias")]
                members += [Member(key, 0, identity()) for key in keys]
            else:
                i = s - 1
                members += [
                    Member(f"{P}.ups.{i}.weight", 1, identity()),  # ConvTranspose1d [in, out, k]
                    Member(f"{P}.ups.{i}.bias", 0, identity()),
                ]
                for r in range(i * n_kernels, (i + 1) * n_kernels):
                    for conv in ("convs1", "convs2"):
                        for m in range(len(config.resblock_dilation_sizes[r % n_kernels])):
                            key = f"{P}.resblocks.{r}.{conv}.{m}"
                            members += [
                                Member(f"{key}.weight", 0, identity()),
                                Member(f"{key}.weight", 1, identity(), consumer=True),
                                Member(f"{key}.bias", 0, identity()),
                            ]
            if s < n_stages:
                members.append(Member(f"{P}.ups.{s}.weight", 0, identity(), consumer=True))
            else:
                members.append(Member(f"{P}.conv_post.weight", 1, identity(), consumer=True))
            sets.append(ChannelSet(name=unit, unit=unit, size=widths[s], members=members))
        return sets

    def resize(self, config: SoVITSConfig, sizes: dict[str, int], editor: StateEditor) -> SoVITSConfig:
        widths = tuple(sizes.get(u, w) for u, w in zip(stage_units(config), config.decoder_channels))
        uniform = tuple(config.upsample_initial_channel // 2**i for i in range(len(widths)))
        return config.replace(dec_channels=None if widths == uniform else widths)

    # ----- depth: students only (resblock kernels per stage)

    def depth_pools(self, config: SoVITSConfig, student: bool) -> list[DepthPool]:
        if not student:
            return []
        n_kernels = len(config.resblock_kernel_sizes)
        n_stages = len(config.upsample_rates)
        candidates = []
        for j in range(n_kernels):
            writers = [
                f"{P}.resblocks.{i * n_kernels + j}.convs2.{m}.weight"
                for i in range(n_stages)
                for m in range(len(config.resblock_dilation_sizes[j]))
            ]
            candidates.append(LayerCandidate(f"kernel.{j}", f"{P}.resblocks.{j}", writers))
        return [DepthPool(candidates)]

    def prune_depth_keep(self, config: SoVITSConfig, ratio: float) -> list[int]:
        raise ConfigError("dec: depth pruning is not supported; use a student with depth_mult < 1")

    def drop_layers(self, config: SoVITSConfig, editor: StateEditor, kept: list[list[int]]) -> SoVITSConfig:
        (keep,) = kept
        n_kernels = len(config.resblock_kernel_sizes)
        n_stages = len(config.upsample_rates)
        mapping = {}
        for i in range(n_stages):
            for j in range(n_kernels):
                old = f"{P}.resblocks.{i * n_kernels + j}"
                if j in keep:
                    mapping[old] = f"{P}.resblocks.{i * len(keep) + keep.index(j)}"
                else:
                    editor.drop_prefix(old)
        editor.rename_prefixes(mapping)
        return config.replace(
            resblock_kernel_sizes=tuple(config.resblock_kernel_sizes[j] for j in keep),
            resblock_dilation_sizes=tuple(tuple(config.resblock_dilation_sizes[j]) for j in keep),
        )

    def student_depth_keep(self, config: SoVITSConfig, student: StudentConfig) -> list[int]:
        return [scaled(len(config.resblock_kernel_sizes), student.depth_mult)]

    def student_sets(
        self, config: SoVITSConfig, student: StudentConfig
    ) -> tuple[list[ChannelSet], dict[str, int]]:
        sets = self.prune_sets(config)
        n = len(config.upsample_rates)
        if config.dec_channels is None:  # upstream's halving: shrink U, stay upstream-expressible
            u = scaled(config.upsample_initial_channel, student.width_mult, multiple=2**n, minimum=2**n)
            targets = [u // 2**i for i in range(n + 1)]
        else:
            targets = [scaled(w, student.width_mult) for w in config.decoder_channels]
        return sets, {s.name: t for s, t in zip(sets, targets)}

    def resize_student(
        self, config: SoVITSConfig, sizes: dict[str, int], editor: StateEditor
    ) -> SoVITSConfig:
        if config.dec_channels is None:
            return config.replace(upsample_initial_channel=sizes["conv_pre"])
        return self.resize(config, sizes, editor)


__all__ = ["DecStructure", "stage_units"]
