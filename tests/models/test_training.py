"""Teacher-training objectives (autocompress.models.gpt_sovits.training)."""

from __future__ import annotations

import math

import torch

from autocompress.models.gpt_sovits.audio import spectrogram_raw
from autocompress.models.gpt_sovits.config import sovits_tiny
from autocompress.models.gpt_sovits.discriminator import LIGHT_PERIOD_CHANNELS, MultiPeriodDiscriminator
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
import pytest

from autocompress.models.gpt_sovits.training import (
    GPT_WARMUP_STEPS,
    SoVITSLossWeights,
    gpt_batch,
    gpt_learning_rate,
    gpt_select,
    sovits_decode_forward,
    sovits_select,
    waveform_losses,
)

SMALL = sovits_tiny().replace(
    inter_channels=32, hidden_channels=32, filter_channels=64, n_layers=2, gin_channels=32,
    mrte_hidden=32, mrte_heads=2, style_hidden=32, upsample_initial_channel=32,
    flow_wn_layers=1, n_flows=2, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),),
)  # fmt: skip


def _model() -> SynthesizerTrn:
    torch.manual_seed(0)
    model = SynthesizerTrn(SMALL, include_enc_q=False).eval()
    with torch.no_grad():  # a non-trivial codebook and decoder input
        model.quantizer.vq.layers[0]._codebook.embed.normal_()
    return model


def test_decode_objective_generates_what_decode_synthesizes() -> None:
    """A row whose latent is exactly one slice long, padded in a batch, decodes as ``decode`` does."""
    model = _model()
    seg = model.segment_frames  # 32 frames = 16 codes at 25 Hz
    gen = torch.Generator().manual_seed(1)
    codes_a = torch.randint(0, 1024, (seg // 2,), generator=gen)
    codes_b = torch.randint(0, 1024, (seg // 2 + 7,), generator=gen)
    text_a = torch.randint(1, 300, (9,), generator=gen)
    text_b = torch.randint(1, 300, (14,), generator=gen)
    refer_a = spectrogram_raw(0.1 * torch.randn(1, 40 * 640, generator=gen))  # [1, 1025, 41]
    refer_b = spectrogram_raw(0.1 * torch.randn(1, 55 * 640, generator=gen))

    codes = torch.zeros(2, codes_b.numel(), dtype=torch.long)
    codes[0, : codes_a.numel()], codes[1] = codes_a, codes_b
    text = torch.zeros(2, text_b.numel(), dtype=torch.long)
    text[0, : text_a.numel()], text[1] = text_a, text_b
    refer = torch.zeros(2, 1025, refer_b.shape[-1])
    refer[0, :, : refer_a.shape[-1]], refer[1] = refer_a[0], refer_b[0]
    lengths = (torch.tensor([codes_a.numel(), codes_b.numel()]), torch.tensor([text_a.numel(), text_b.numel()]),
               torch.tensor([refer_a.shape[-1], refer_b.shape[-1]]))  # fmt: skip
    wav = 0.1 * torch.randn(2, 1, 2 * codes_b.numel() * 640, generator=gen)

    with torch.no_grad():
        o, y = sovits_decode_forward(model, codes, lengths[0], text, lengths[1], refer, lengths[2], wav)
        _, parts = waveform_losses(model.config, o, y, SoVITSLossWeights())
        expected = model.decode(codes_a[None, None], text_a[None], refer_a, noise_scale=0.0)
    assert o.shape == (2, 1, seg * 640) and y.shape == o.shape
    torch.testing.assert_close(o[0], expected[0], atol=2e-5, rtol=1e-4)
    assert torch.equal(y[0, 0], wav[0, 0, : seg * 640])  # row a's slice starts at frame 0
    assert parts["mel"] > 0 and parts["stft"] > 0


def test_decode_objective_trains_every_inference_module() -> None:
    model = _model().train()
    gen = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 1024, (2, 20), generator=gen)
    refer = spectrogram_raw(0.1 * torch.randn(2, 40 * 640, generator=gen))
    o, y = sovits_decode_forward(
        model, codes, torch.tensor([20, 18]), torch.randint(1, 300, (2, 8), generator=gen), torch.tensor([8, 6]),
        refer, torch.tensor([41, 41]), 0.1 * torch.randn(2, 1, 40 * 640, generator=gen),
        noise_scale=torch.tensor([0.0, 0.5]), generator=gen,
    )  # fmt: skip
    loss, _ = waveform_losses(model.config, o, y, SoVITSLossWeights())
    loss.backward()
    for name in ("enc_p", "flow", "dec", "ref_enc"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), name
    assert all(p.grad is None for p in model.quantizer.parameters())


def test_waveform_losses_vanish_only_on_the_real_signal() -> None:
    gen = torch.Generator().manual_seed(3)
    y = 0.1 * torch.randn(2, 1, 32 * 640, generator=gen)
    same, parts = waveform_losses(SMALL, y, y.clone(), SoVITSLossWeights())
    assert float(same) < 1e-3 and parts["dc"] == 0.0
    shifted, parts = waveform_losses(SMALL, y + 0.05, y, SoVITSLossWeights())
    assert parts["dc"] > 0.04 and float(shifted) > float(same)


def test_light_discriminator_is_small_and_scores_every_period() -> None:
    full = MultiPeriodDiscriminator(SMALL)
    light = MultiPeriodDiscriminator(SMALL, LIGHT_PERIOD_CHANNELS, include_scale=False)
    n_full = sum(p.numel() for p in full.parameters())
    n_light = sum(p.numel() for p in light.parameters())
    assert n_light * 50 < n_full
    y = 0.1 * torch.randn(2, 1, 8000)
    d_r, d_g, f_r, f_g = light(y, y.flip(-1))
    assert len(d_r) == len(SMALL.mpd_periods) == len(f_g)
    assert all(r.shape == g.shape and r.shape[0] == 2 for r, g in zip(d_r, d_g))
    assert [k for k in full.state_dict() if k.startswith("discriminators.1.")] == [
        "discriminators.1." + k for k in light.discriminators[0].state_dict()
    ]


def test_period_discriminator_equals_its_2d_convolution_form() -> None:
    """The 1-D fast path computes upstream's 2-D (k, 1) convolutions exactly."""
    import torch.nn.functional as F

    from autocompress.models.gpt_sovits.discriminator import DiscriminatorP
    from autocompress.models.gpt_sovits.modules import LRELU_SLOPE

    torch.manual_seed(4)
    disc = DiscriminatorP(3, channels=LIGHT_PERIOD_CHANNELS)
    x = torch.randn(2, 1, 1000)  # 1000 % 3 != 0: reflect-padded to 1002
    h = F.pad(x, (0, 2), "reflect").view(2, 1, 334, 3)
    want = []
    for conv in disc.convs:
        h = F.leaky_relu(F.conv2d(h, conv.weight, conv.bias, conv.stride, conv.padding), LRELU_SLOPE)
        want.append(h)
    want.append(F.conv2d(h, disc.conv_post.weight, disc.conv_post.bias, 1, disc.conv_post.padding))
    logits, fmap = disc(x)
    assert len(fmap) == len(want)
    for got, ref in zip(fmap, want):
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, want[-1].flatten(1), atol=1e-5, rtol=1e-4)


def test_gpt_learning_rate_warms_up_then_halves_down_to_a_tenth_of_its_peak() -> None:
    peak = 2e-4
    ramp = [gpt_learning_rate(step, peak, 1000.0) for step in range(GPT_WARMUP_STEPS)]
    assert ramp == sorted(ramp) and ramp[0] == pytest.approx(peak / 10)  # the floor holds in the warm-up too
    after = GPT_WARMUP_STEPS - 1
    assert ramp[-1] == pytest.approx(peak * 0.5 ** (after / 1000))
    assert gpt_learning_rate(1000, peak, 1000.0) == pytest.approx(peak / 2)
    assert gpt_learning_rate(1000, peak, 500.0) == pytest.approx(peak / 4)
    assert gpt_learning_rate(10**6, peak, 1000.0) == pytest.approx(peak / 10)
    # the default is the schedule the demo GPTs trained with: 1e-3, halving every 1000 steps
    assert gpt_learning_rate(2000) == pytest.approx(2.5e-4)


def test_sovits_select_rewards_mos_and_voicing_and_penalises_mel_error() -> None:
    assert sovits_select(0.5, 0.4) == pytest.approx(0.3)  # without a DistillMOS its term is 0
    assert sovits_select(0.5, 0.4, distillmos=1.0) == sovits_select(0.5, 0.4)
    assert sovits_select(0.5, 0.4, distillmos=2.0) == pytest.approx(-0.2)
    assert sovits_select(0.6, 0.4) > sovits_select(0.5, 0.4) > sovits_select(0.5, 0.6)


def test_gpt_batch_joins_rows_with_prompt_codes_and_pads_on_the_right() -> None:
    from types import SimpleNamespace as Item

    a = Item(phones=torch.tensor([1, 2]), codes=torch.tensor([5, 6]), prompt_codes=torch.tensor([5, 6, 0, 0]))
    b = Item(phones=torch.tensor([3]), codes=torch.tensor([7, 8, 9]), prompt_codes=None)
    phones, p_len, codes, c_len = gpt_batch([[a, b], [b], [b, a]])
    assert phones.tolist() == [[1, 2, 3], [3, 0, 0], [3, 1, 2]] and p_len.tolist() == [3, 1, 3]
    # a row's leading items read as prompts (with their silence); the last is what is said
    assert codes.tolist() == [[5, 6, 0, 0, 7, 8, 9], [7, 8, 9, 0, 0, 0, 0], [7, 8, 9, 5, 6, 0, 0]]
    assert c_len.tolist() == [7, 3, 5]


def test_gpt_select_adds_length_and_runaway_penalties_to_the_cross_entropy() -> None:
    clean = gpt_select(2.0, [1.0, 1.0], 0.0)
    assert clean["select"] == pytest.approx(2.0) and clean["length_off"] == 0.0
    fast = gpt_select(2.0, [0.5, 1.0], 0.0)  # one item outside 0.7-1.3x: half the items off
    assert fast["length_off"] == 0.5 and fast["length_log_error"] == pytest.approx(abs(math.log(0.5)) / 2)
    assert fast["select"] == pytest.approx(2.0 + 0.5 + abs(math.log(0.5)) / 2)
    assert gpt_select(2.0, [1.0, 1.0], 0.2)["select"] == pytest.approx(2.2)
    assert gpt_select(2.0, [1.2], 0.0)["select"] < gpt_select(2.0, [1.25], 0.0)["select"]
    with pytest.raises(Exception, match="at least one held-out item"):
        gpt_select(2.0, [], 0.0)
