"""A micro teacher voice (random weights, upstream formats), a synthetic experiment folder and a
small search space, for the search tests."""

from __future__ import annotations

from pathlib import Path

import torch

SPACE = """
[space]
name = "test-micro"
description = "micro voice for tests"
steps = 4
trials = 3

[finetune]
lr = 1e-3
batch_size = 1
eval_every = 2
eval_items = 2
quality_items = 1
warmup_checks = 1

[groups.gpt]
prune = [0.0, 0.2]
bits = [8, 4]

[groups.dec]
prune = [0.0, 0.2]
bits = [16, 8]
activations = ["fp16"]

[groups.ref_enc]
skip = "always"
"""


def make_micro_voice(root: Path, version: str = "v2") -> dict[str, Path]:
    """Write a micro GPT and SoVITS (random weights, upstream formats) and a 6-item experiment.

    ``version`` v1 gives a v1 SoVITS (322 symbols, full 1025-bin reference), a v1 GPT (512-row
    phone vocabulary) and a folder of v1 phones; v2Pro / v2ProPlus give a Pro SoVITS (1024-wide
    style vector, speaker-verification input; ProPlus with upstream's wider first decoder kernel)
    and a folder with ``7-sv_cn``.
    """
    from autocompress.models.gpt_sovits import (
        SynthesizerTrn,
        Text2SemanticGPT,
        gpt_tiny,
        make_synthetic_experiment,
        save_gpt,
        save_sovits,
        sovits_tiny,
    )

    torch.manual_seed(0)
    sovits_cfg = sovits_tiny().replace(
        inter_channels=32, hidden_channels=32, filter_channels=64, n_layers=1, gin_channels=32, mrte_hidden=32,
        mrte_heads=2, style_hidden=32, upsample_initial_channel=32, flow_wn_layers=1, n_flows=1, enc_q_layers=1,
        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),),
    )
    gpt_cfg = gpt_tiny().replace(hidden_dim=32, n_head=2, n_layer=1, ffn_dim=128)
    if version == "v1":
        sovits_cfg = sovits_cfg.replace(version="v1", n_symbols=322, ref_bins=1025)
        gpt_cfg = gpt_cfg.replace(phoneme_vocab_size=512, version="v1")
    elif version in ("v2Pro", "v2ProPlus"):
        sovits_cfg = sovits_cfg.replace(version=version, gin_channels=1024)  # Pro: ge_to512 expects 1024
        if version == "v2ProPlus":
            sovits_cfg = sovits_cfg.replace(upsample_kernel_sizes=(20, 16, 8, 2, 2))
    elif version != "v2":
        raise ValueError(f"no micro voice of version {version!r}")
    root.mkdir(parents=True, exist_ok=True)
    paths = {"gpt": root / "gpt.ckpt", "sovits": root / "sovits.pth", "data": root / "exp", "space": root / "space.toml"}
    save_gpt(Text2SemanticGPT(gpt_cfg), paths["gpt"])
    save_sovits(SynthesizerTrn(sovits_cfg, include_enc_q=False), paths["sovits"])
    make_synthetic_experiment(paths["data"], n_items=6, duration_s=(1.0, 1.5), version=version)
    paths["space"].write_text(SPACE)
    return paths
