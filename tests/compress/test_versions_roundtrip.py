"""v1, v2Pro and v2ProPlus voices (reduced widths) compressed at the far end of the full-size
search space (students, pruning and the narrowest bits at once), then saved in upstream's format
and read back: what is specific to each version survives, and the file reproduces the student."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from compress_helpers import randomize_

from autocompress.compress import (
    CompressionPlan,
    GroupPlan,
    PruneConfig,
    QuantConfig,
    StudentConfig,
    compress,
    has_fake_quant,
    strip_fake_quant_,
)
from autocompress.models.gpt_sovits.checkpoint import load_gpt, load_sovits, save_gpt, save_sovits
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search.pipeline import rebuilt


def _voice(version: str) -> Voice:
    sovits = sovits_tiny().replace(
        inter_channels=32, hidden_channels=32, filter_channels=64, n_layers=2, gin_channels=32, mrte_hidden=32,
        mrte_heads=2, style_hidden=32, upsample_initial_channel=64, flow_wn_layers=1, resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3, 5),),
    )  # fmt: skip
    gpt = gpt_tiny().replace(hidden_dim=64, n_head=4, n_layer=4, ffn_dim=256)
    if version == "v1":
        sovits = sovits.replace(version="v1", n_symbols=322, ref_bins=1025)
        gpt = gpt.replace(phoneme_vocab_size=512, version="v1")
    else:  # Pro: a 1024-wide style vector and the speaker-verification layers
        sovits = sovits.replace(version=version, gin_channels=1024, sv_dim=64)  # upstream: 20480 (slow here)
        if version == "v2ProPlus":
            sovits = sovits.replace(upsample_initial_channel=96, upsample_kernel_sizes=(20, 16, 8, 2, 2))
    return Voice(randomize_(Text2SemanticGPT(gpt), seed=1), randomize_(SynthesizerTrn(sovits, include_enc_q=False), seed=2))


def _group(prune: float, bits: str, width: float, depth: float = 1.0) -> GroupPlan:
    return GroupPlan(
        prune=PruneConfig(ratio=prune),
        quant=QuantConfig(weights=bits, activations="fp16"),
        student=StudentConfig(width_mult=width, depth_mult=depth),
    )


# The extremes of search_spaces/gpt_sovits_v2.toml, and ref_enc (which it skips) compressed too.
EXTREMES = CompressionPlan(
    {
        "gpt": _group(0.3, "int4", 0.75, 0.75),
        "enc_p": _group(0.3, "int8", 0.75),
        "flow": _group(0.2, "int8", 0.75),
        "dec": _group(0.4, "int8", 0.5),
        "ref_enc": _group(0.3, "int8", 0.5),
    }
)


def _run(voice: Voice, pro: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    phones = torch.randint(1, 300, (1, 9), generator=gen)
    bert = torch.randn(1, 1024, 9, generator=gen)
    codes = torch.randint(0, 1024, (1, 1, 3), generator=gen)
    refer = torch.rand(1, 1025, 24, generator=gen)
    sv = torch.randn(1, 64, generator=gen) if pro else None
    with torch.no_grad():
        logits = voice.gpt.prefill_logits(phones, bert, codes[0])
        wav = voice.sovits.decode(codes, phones[:, :6], refer, noise_scale=0.0, sv_emb=sv)
    return logits, wav


@pytest.mark.parametrize("version", ["v1", "v2Pro", "v2ProPlus"])
def test_extreme_plan_keeps_the_version_and_round_trips_through_upstream_files(tmp_path: Path, version: str) -> None:
    teacher = _voice(version)
    pro = version != "v1"
    student = compress(teacher, EXTREMES)
    s, g = student.sovits.config, student.gpt.config
    assert s.version == version and g.version == teacher.gpt.config.version
    assert (s.n_symbols, s.ref_bins) == ((322, 1025) if version == "v1" else (732, 704))
    assert g.phoneme_vocab_size == (512 if version == "v1" else 732)
    assert student.sovits.enc_p.text_embedding.weight.shape[0] == s.n_symbols
    assert student.gpt.config.n_layer == 3 and student.gpt.config.hidden_dim == 48
    if pro:  # the speaker-vector layers keep their widths and are quantized with their groups
        assert tuple(student.sovits.sv_emb.weight.shape) == (1024, 64)
        assert tuple(student.sovits.prelu.weight.shape) == (1024,)
        assert tuple(student.sovits.ge_to512.weight.shape) == (s.mrte_hidden, 1024)
        assert has_fake_quant(student.sovits.sv_emb) and has_fake_quant(student.sovits.ge_to512)
    else:
        assert not hasattr(student.sovits, "sv_emb")
    if version == "v2ProPlus":
        assert s.upsample_kernel_sizes[0] == 20 and s.decoder_channels[0] < 96
    logits, wav = _run(student, pro)
    _, teacher_wav = _run(teacher, pro)
    assert wav.shape == teacher_wav.shape and torch.isfinite(wav).all() and torch.isfinite(logits).all()

    strip_fake_quant_(student.gpt)
    strip_fake_quant_(student.sovits)
    gpt, sovits = rebuilt(student)
    save_gpt(gpt, tmp_path / "s.ckpt", half=False)
    save_sovits(sovits, tmp_path / "s.pth", half=False)
    assert (tmp_path / "s.pth").read_bytes()[:2] == {"v1": b"PK", "v2Pro": b"05", "v2ProPlus": b"06"}[version]
    loaded = Voice(load_gpt(tmp_path / "s.ckpt"), load_sovits(tmp_path / "s.pth"))
    assert loaded.sovits.config == s and loaded.gpt.config == g
    want_logits, want_wav = _run(student, pro)
    got_logits, got_wav = _run(loaded, pro)
    torch.testing.assert_close(got_logits, want_logits, rtol=0, atol=0)
    torch.testing.assert_close(got_wav, want_wav, rtol=1e-5, atol=1e-6)
