"""Upstream-format copies of compressed voices load back with our loader."""

from __future__ import annotations

import torch

from autocompress.export import plain_copy, write_upstream
from autocompress.export.upstream import GPT_FILE, SOVITS_FILE
from autocompress.models.gpt_sovits.checkpoint import load_gpt, load_sovits
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_v2
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn


def _small_expressible_sovits() -> SynthesizerTrn:
    """A v2 SoVITS narrower in the widths upstream's config exposes (so upstream can build it)."""
    config = sovits_v2().replace(
        inter_channels=32, filter_channels=64, n_layers=2, upsample_initial_channel=32,
        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),), p_dropout=0.0,
    )  # fmt: skip
    assert config.is_upstream_expressible
    torch.manual_seed(3)
    return SynthesizerTrn(config, include_enc_q=False).eval()


def test_upstream_files_load_back_and_speak_the_same(tmp_path) -> None:
    torch.manual_seed(4)
    gpt, sovits = plain_copy(Text2SemanticGPT(gpt_tiny()).eval(), _small_expressible_sovits())
    section = write_upstream(gpt, sovits, tmp_path)
    assert section["files"] == [GPT_FILE, SOVITS_FILE] and section["precision"] == "fp16"

    gpt_back = load_gpt(tmp_path / GPT_FILE)
    sovits_back = load_sovits(tmp_path / SOVITS_FILE)
    assert gpt_back.config == gpt.config
    assert sovits_back.config.to_dict() == sovits.config.to_dict()

    phones, bert, prompt = torch.randint(0, 700, (1, 9)), torch.randn(1, 1024, 9), torch.randint(0, 1024, (1, 5))
    with torch.no_grad():
        want = gpt.prefill_logits(phones, bert, prompt)
        got = gpt_back.prefill_logits(phones, bert, prompt)
    assert torch.allclose(got, want, atol=5e-2 * want.abs().max().item())  # fp16 storage

    codes, text, refer = torch.randint(0, 1024, (1, 1, 6)), torch.randint(0, 700, (1, 5)), torch.rand(1, 1025, 16)
    with torch.no_grad():
        want_wav = sovits.decode(codes, text, refer, noise_scale=0.0)
        got_wav = sovits_back.decode(codes, text, refer, noise_scale=0.0)
    err = (got_wav - want_wav).pow(2).sum() / want_wav.pow(2).sum()
    assert err < 1e-2  # fp16 weights: well above 20 dB


def test_shapes_upstream_cannot_express_are_skipped_with_a_reason(bundle_fp32) -> None:
    upstream = bundle_fp32.manifest.upstream
    assert upstream["files"] == [GPT_FILE]  # gpt_tiny is expressible, sovits_tiny is not
    assert "sovits" in upstream["skipped"]
    assert (bundle_fp32.path / GPT_FILE).is_file()
    assert GPT_FILE in bundle_fp32.manifest.files
    assert load_gpt(bundle_fp32.path / GPT_FILE).config == gpt_tiny()
