"""Named compression plans: plain functions returning a :class:`CompressionPlan`."""

from __future__ import annotations

from autocompress.compress.plan import CompressionPlan, GroupPlan, PruneConfig, QuantConfig

_GROUPS = ("gpt", "enc_p", "flow", "dec", "ref_enc")


def teacher_fp32() -> CompressionPlan:
    """The teacher as it is: every group fp32, nothing pruned (the baseline)."""
    return CompressionPlan({}, name="teacher_fp32")


def teacher_fp16() -> CompressionPlan:
    """The teacher with fp16 weights and activations everywhere, nothing pruned."""
    quant = QuantConfig(weights="fp16", activations="fp16")
    return CompressionPlan({g: GroupPlan(quant=quant) for g in _GROUPS}, name="teacher_fp16")


def teacher_bf16() -> CompressionPlan:
    """The teacher with bf16 weights and activations everywhere, nothing pruned: it ships, and is
    scored, as the fp16 the export stores bf16 as (:func:`teacher_fp16`)."""
    quant = QuantConfig(weights="bf16", activations="bf16")
    return CompressionPlan({g: GroupPlan(quant=quant) for g in _GROUPS}, name="teacher_bf16")


def seed_recipe() -> CompressionPlan:
    """A sensible first trial: 30 % structured pruning, an int8 GPT, fp16 SoVITS.

    GPT: 30 % of every layer's heads and FFN units pruned, int8 weights and inputs (W8A8, as
    int8 layers ship; its layers are all linear). ref_enc: fp16 weights and activations, not pruned (0.6 M parameters).
    enc_p, flow, dec: 30 % of their channels pruned, fp16 weights and activations (they
    are convolutions). Deployable as is on GPUs with fp16 and int8 matmul (rtx3060 ...).
    """
    prune = PruneConfig(ratio=0.3)
    fp16 = QuantConfig(weights="fp16", activations="fp16")
    return CompressionPlan(
        {
            "gpt": GroupPlan(prune=prune, quant=QuantConfig(weights="int8", activations="int8")),
            "enc_p": GroupPlan(prune=prune, quant=fp16),
            "flow": GroupPlan(prune=prune, quant=fp16),
            "dec": GroupPlan(prune=prune, quant=fp16),
            "ref_enc": GroupPlan(quant=fp16),
        },
        name="seed_recipe",
    )


def int8_everywhere() -> CompressionPlan:
    """int8 weights in every group, nothing pruned (the usual post-training baseline)."""
    quant = QuantConfig(weights="int8")
    return CompressionPlan({g: GroupPlan(quant=quant) for g in _GROUPS}, name="int8_everywhere")


PRESETS = {
    f.__name__: f for f in (teacher_fp32, teacher_fp16, teacher_bf16, seed_recipe, int8_everywhere)
}


def preset(name: str) -> CompressionPlan:
    """The preset plan called ``name`` (see :data:`PRESETS`).

    Raises:
        ConfigError: unknown name.
    """
    from autocompress.exceptions import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"unknown preset plan {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()


__all__ = [
    "PRESETS",
    "int8_everywhere",
    "preset",
    "seed_recipe",
    "teacher_bf16",
    "teacher_fp16",
    "teacher_fp32",
]
