"""A weight-normed layer whose row is all zero (rounded away at 2 bits, or pruned to nothing)
survives being given weight norm again: the rebuilt model computes the same waveform, not 0/0."""

from __future__ import annotations

import torch
from compress_helpers import randomize_

from autocompress.compress import CompressionPlan, GroupPlan, QuantConfig, compress, strip_fake_quant_, weight_norm_parts
from autocompress.export.upstream import with_weight_norm
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search.pipeline import rebuilt


def test_weight_norm_parts_keep_a_zero_row_finite():
    w = torch.randn(4, 3, 5)
    w[2] = 0
    g, v = weight_norm_parts(w)
    assert g.shape == (4, 1, 1) and g[2].item() == 0
    torch.testing.assert_close(g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1), w)


def _wav(sovits: SynthesizerTrn) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, sovits.config.codebook_size, (1, 1, 4), generator=gen)
    text = torch.randint(1, 300, (1, 6), generator=gen)
    refer = torch.rand(1, sovits.config.ref_bins, 20, generator=gen)
    with torch.no_grad():
        return sovits.decode(codes, text, refer, noise_scale=0.0)


def test_a_decoder_row_rounded_to_zero_rebuilds_and_exports_finite():
    sovits = sovits_tiny().replace(upsample_initial_channel=32, resblock_kernel_sizes=(3,),
                                   resblock_dilation_sizes=((1, 3, 5),))
    voice = Voice(randomize_(Text2SemanticGPT(gpt_tiny().replace(hidden_dim=32, n_head=2, n_layer=1, ffn_dim=64))),
                  randomize_(SynthesizerTrn(sovits, include_enc_q=False), seed=1))
    student = compress(voice, CompressionPlan({"dec": GroupPlan(quant=QuantConfig(weights="int8"))}))
    strip_fake_quant_(student.gpt)
    strip_fake_quant_(student.sovits)
    with torch.no_grad():  # as 2-bit per-output-channel rounding can leave a whole input row of a ConvTranspose
        student.sovits.dec.ups[0].weight[3] = 0
    want = _wav(student.sovits)
    assert torch.isfinite(want).all()
    _, sovits_again = rebuilt(student)
    torch.testing.assert_close(_wav(sovits_again), want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(_wav(with_weight_norm(student.sovits)), want, rtol=1e-4, atol=1e-5)
