"""SoVITS model structure and behaviour on tiny configs and every full-size preset (meta device)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from autocompress.exceptions import ConfigError, DataError
from autocompress.models.gpt_sovits.config import SoVITSConfig, sovits_preset, sovits_tiny
from autocompress.models.gpt_sovits.discriminator import MultiPeriodDiscriminator
from autocompress.models.gpt_sovits.modules import MultiHeadAttention
from autocompress.models.gpt_sovits.sovits import (
    SynthesizerTrn,
    from_upstream_keys,
    remove_weight_norm_,
    to_upstream_keys,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MANIFESTS = SHARED / "fixtures" / "manifests"
SHAPES_DOC = SHARED / "docs" / "sovits_state_dict_shapes.json"
VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
needs_shared = pytest.mark.skipif(not MANIFESTS.exists(), reason=f"shared fixtures not found at {SHARED}")


def _shapes(state_dict: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in to_upstream_keys(state_dict).items()}


def _tiny(**changes) -> SoVITSConfig:  # noqa: ANN003
    # 8 frames per training slice keeps the generator cheap.
    return sovits_tiny().replace(segment_size=640 * 8, **changes)


def _tiny_pro() -> SoVITSConfig:
    return _tiny(version="v2Pro", gin_channels=96, sv_dim=48, mpd_periods=(2, 3, 5, 7, 11, 17, 23))


def _model(config: SoVITSConfig, seed: int = 0) -> SynthesizerTrn:
    torch.manual_seed(seed)
    model = SynthesizerTrn(config).eval()
    with torch.no_grad():  # non-trivial values where upstream initialises constants
        for name, p in model.named_parameters():
            if name.endswith(("post.weight", "post.bias")) and name.startswith("flow."):
                p.normal_(0.0, 0.05)
        if config.is_pro:
            model.prelu.weight.uniform_(-0.5, 0.5)
        # HiFi-GAN's N(0, 0.01) init outputs a near-constant signal; x10 makes it input-sensitive.
        for name, p in model.dec.named_parameters():
            if name.endswith("original0"):
                p.mul_(10.0)
    return model


def _refer(frames: int = 30, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1025, frames, generator=g) * 5


def _codes_text(tc: int = 6, tt: int = 5, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 1024, (1, 1, tc), generator=g), torch.randint(0, 732, (1, tt), generator=g)


# --------------------------------------------------------------------------- state-dict layout


@needs_shared
@pytest.mark.parametrize("version", VERSIONS)
def test_full_size_keys_and_shapes_equal_upstream_manifest(version: str) -> None:
    manifest = json.loads((MANIFESTS / f"sovits_{version}.json").read_text())
    want = {k: shape for k, (shape, _) in {**manifest["params"], **manifest["buffers"]}.items()}
    with torch.device("meta"):
        model = SynthesizerTrn(sovits_preset(version))
    got = _shapes(model.state_dict())
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:10]
    assert {k: v for k, v in got.items() if v != want[k]} == {}
    assert list(got) == manifest["state_dict_order"]
    assert sorted(k for k in got if k.startswith("enc_q.")) == sorted(manifest["training_only_keys"])


@needs_shared
@pytest.mark.parametrize("version", VERSIONS)
def test_inference_only_model_has_the_user_file_keys(version: str) -> None:
    manifest = json.loads((MANIFESTS / f"sovits_{version}.json").read_text())
    training_only = set(manifest["training_only_keys"])
    user_keys = [k for k in manifest["state_dict_order"] if k not in training_only]
    assert len(user_keys) == manifest["n_entries_in_user_file"]
    with torch.device("meta"):
        model = SynthesizerTrn(sovits_preset(version), include_enc_q=False)
    assert list(_shapes(model.state_dict())) == user_keys


def test_drop_enc_q_removes_exactly_the_training_keys() -> None:
    model = SynthesizerTrn(_tiny())
    before = set(model.state_dict())
    assert model.has_enc_q and model.drop_enc_q_() is model and not model.has_enc_q
    assert before - set(model.state_dict()) == {k for k in before if k.startswith("enc_q.")}
    assert set(model.state_dict()) == set(SynthesizerTrn(_tiny(), include_enc_q=False).state_dict())


@needs_shared
@pytest.mark.parametrize("version", VERSIONS)
def test_discriminator_keys_equal_upstream(version: str) -> None:
    want = json.loads(SHAPES_DOC.read_text())[f"MultiPeriodDiscriminator_{version}"]
    with torch.device("meta"):
        disc = MultiPeriodDiscriminator(sovits_preset(version))
    got = _shapes(disc.state_dict())
    assert got == want
    assert list(got) == list(want)


def test_key_renaming_round_trip() -> None:
    sd = SynthesizerTrn(_tiny()).state_dict()
    up = to_upstream_keys(sd)
    assert "dec.ups.0.weight_g" in up and "dec.ups.0.weight_v" in up
    assert "dec.ups.0.parametrizations.weight.original0" in sd
    assert not any("parametrizations" in k for k in up)
    assert up["dec.conv_pre.weight"] is sd["dec.conv_pre.weight"]  # plain keys pass through
    assert list(from_upstream_keys(up)) == list(sd)
    # g is per output row (dim 0): [C_out, 1, 1] for convs, per *input* channel for ConvTranspose
    assert up["dec.ups.0.weight_g"].shape == (128, 1, 1)
    assert up["flow.flows.0.enc.in_layers.0.weight_g"].shape == (192, 1, 1)


def test_config_widths_drive_every_shape() -> None:
    config = _tiny(
        dec_channels=(80, 40, 24, 12, 6, 4),
        flow_hidden=(32, 48, 64, 16),
        enc_layer_heads=(1, 2, 1, 2),
        enc_layer_filter=(64, 128, 32, 256),
    )
    up = _shapes(SynthesizerTrn(config).state_dict())
    assert up["dec.conv_pre.weight"] == [80, 96, 7]
    assert up["dec.ups.2.weight_v"] == [24, 12, 8]
    assert up["dec.resblocks.5.convs1.0.weight_v"] == [12, 12, 7]  # stage 2, second kernel
    assert up["dec.conv_post.weight"] == [1, 4, 7]
    assert [up[f"flow.flows.{2 * i}.pre.weight"][0] for i in range(4)] == [32, 48, 64, 16]
    assert up["flow.flows.6.enc.cond_layer.weight_v"] == [2 * 16 * 2, 128, 1]
    assert up["enc_p.encoder_ssl.attn_layers.0.conv_q.weight"] == [48, 96, 1]  # 1 head x 48
    assert up["enc_p.encoder_text.attn_layers.1.conv_o.weight"] == [96, 48, 1]
    assert up["enc_p.encoder_text.attn_layers.0.emb_rel_k"] == [1, 9, 48]
    assert up["enc_p.encoder2.ffn_layers.0.conv_1.weight"] == [256, 96, 3]
    assert "flow.flows.8.pre.weight" not in up
    model = _model(config)
    codes, text = _codes_text()
    assert model.decode(codes, text, _refer(), noise_scale=0.0).shape == (1, 1, 12 * 640)


def test_non_pro_needs_matching_style_and_mrte_widths() -> None:
    with pytest.raises(ConfigError, match="mrte_hidden"):
        SynthesizerTrn(_tiny(gin_channels=64))


# --------------------------------------------------------------------------- inference


@pytest.mark.parametrize(
    ("speed", "frames"), [(1.0, 12), (1.25, int(12 / 1.25) + 1), (0.9, int(12 / 0.9) + 1)]
)
def test_decode_length(speed: float, frames: int) -> None:
    model = _model(_tiny())
    codes, text = _codes_text(tc=6)
    wav = model.decode(codes, text, _refer(), noise_scale=0.0, speed=speed)
    assert wav.shape == (1, 1, frames * model.config.samples_per_frame)
    assert wav.abs().max() <= 1.0 and wav.std() > 0


@pytest.mark.parametrize(
    ("frames", "speed", "want"), [(100, 1.1, 91), (100, 0.9, 112), (100, 1.5, 67), (100, 1.0, 100)]
)
def test_speed_resamples_the_prior(frames: int, speed: float, want: int) -> None:
    model = _model(_tiny())
    codes, text = _codes_text(tc=frames // 2)
    with torch.no_grad():
        m_p, logs_p, y_mask = model.infer_latent(codes, text, model.style(_refer()), speed)
    assert m_p.shape[-1] == logs_p.shape[-1] == y_mask.shape[-1] == want


def test_noise_is_injectable_and_scaled() -> None:
    model = _model(_tiny())
    codes, text = _codes_text()
    refer = _refer()
    clean = model.decode(codes, text, refer, noise_scale=0.0)
    zero_noise = model.decode(codes, text, refer, noise_scale=0.5, noise=torch.zeros(1, 96, 12))
    torch.testing.assert_close(zero_noise, clean)
    eps = torch.randn(1, 96, 12)
    noisy = model.decode(codes, text, refer, noise_scale=0.5, noise=eps)
    assert not torch.allclose(noisy, clean, atol=1e-4)
    torch.testing.assert_close(model.decode(codes, text, refer, noise_scale=0.25, noise=2 * eps), noisy)


def test_decode_steps_match_the_split_methods() -> None:
    model = _model(_tiny())
    codes, text = _codes_text()
    refer, eps = _refer(), torch.randn(1, 96, 12)
    with torch.no_grad():
        ge = model.style(refer)
        m_p, logs_p, y_mask = model.infer_latent(codes, text, ge)
        z = model.flow(m_p + eps * torch.exp(logs_p) * 0.3, y_mask, g=ge, reverse=True)
        want = model.dec(z * y_mask, g=ge)
    torch.testing.assert_close(model.decode(codes, text, refer, noise_scale=0.3, noise=eps), want)


def test_v1_reference_encoder_reads_all_bins_v2_only_the_low_704() -> None:
    refer = _refer()
    high_changed = refer.clone()
    high_changed[:, 704:] += 3.0
    v2 = _model(_tiny())
    v1 = _model(_tiny(version="v1", n_symbols=322, ref_bins=1025))
    with torch.no_grad():
        torch.testing.assert_close(v2.style(refer), v2.style(high_changed), rtol=0, atol=0)
        assert not torch.allclose(v1.style(refer), v1.style(high_changed))
    assert v1.ref_enc.spectral[0].fc.weight.shape == (64, 1025)


def test_multiple_references_average_the_style() -> None:
    model = _model(_tiny())
    r1, r2 = _refer(30, seed=3), _refer(17, seed=4)
    with torch.no_grad():
        both = model.style([r1, r2])
        torch.testing.assert_close(both, (model.style(r1) + model.style(r2)) / 2)


def test_pro_decode_uses_sv_emb_and_averages_after_prelu() -> None:
    model = _model(_tiny_pro())
    codes, text = _codes_text()
    r1, r2 = _refer(30, seed=3), _refer(17, seed=4)
    s1, s2 = torch.randn(1, 48), torch.randn(1, 48)
    wav = model.decode(codes, text, r1, noise_scale=0.0, sv_emb=s1)
    assert wav.shape == (1, 1, 12 * 640)
    assert not torch.allclose(wav, model.decode(codes, text, r1, noise_scale=0.0, sv_emb=s2), atol=1e-5)
    with torch.no_grad():
        pre = [
            model.ref_enc(r[:, :704], torch.ones(1, 1, r.shape[-1])) + model.sv_emb(s).unsqueeze(-1)
            for r, s in ((r1, s1), (r2, s2))
        ]
        want = (model.prelu(pre[0]) + model.prelu(pre[1])) / 2
        got = model.style([r1, r2], [s1, s2])
        torch.testing.assert_close(got, want)
        assert not torch.allclose(got, model.prelu((pre[0] + pre[1]) / 2), atol=1e-6)
        # MRTE sees ge_to512(ge); flow and decoder see the full ge
        assert model._text_style(got).shape == (1, model.config.mrte_hidden, 1)
    with pytest.raises(DataError, match="sv_emb"):
        model.decode(codes, text, r1, noise_scale=0.0)


def test_extract_latent_is_nearest_codeword() -> None:
    model = _model(_tiny())
    ssl = torch.randn(2, 768, 21)  # odd length: the stride-2 projection floors it
    codes = model.extract_latent(ssl)
    assert codes.shape == (2, 1, 10) and codes.dtype == torch.int64
    with torch.no_grad():
        feats = model.ssl_proj(ssl).transpose(1, 2)  # [B, T, D]
        embed = model.quantizer.vq.layers[0]._codebook.embed
        want = torch.cdist(feats, embed.unsqueeze(0).expand(2, -1, -1)).argmin(-1)
    torch.testing.assert_close(codes[:, 0], want, rtol=0, atol=0)
    decoded = model.quantizer.decode(codes.transpose(0, 1))
    torch.testing.assert_close(model.quantizer.encode(decoded), codes.transpose(0, 1), rtol=0, atol=0)


def test_quantizer_buffers_are_buffers_and_never_trained() -> None:
    model = _model(_tiny())
    names = {n for n, _ in model.named_buffers()}
    prefix = "quantizer.vq.layers.0._codebook."
    assert {prefix + b for b in ("inited", "cluster_size", "embed", "embed_avg")} <= names
    assert not any(n.startswith("quantizer.") for n, _ in model.named_parameters())


def test_flow_is_invertible() -> None:
    model = _model(_tiny())
    x = torch.randn(2, 96, 13)
    mask = torch.ones(2, 1, 13)
    mask[1, :, 9:] = 0
    g = torch.randn(2, 128, 1)
    with torch.no_grad():
        z = model.flow(x, mask, g=g)
        assert not torch.allclose(z, x)
        back = model.flow(z, mask, g=g, reverse=True)
        torch.testing.assert_close(back * mask, x * mask, rtol=1e-5, atol=1e-5)


def test_remove_weight_norm_keeps_outputs() -> None:
    model = _model(_tiny())
    codes, text = _codes_text()
    refer = _refer()
    before = model.decode(codes, text, refer, noise_scale=0.0)
    remove_weight_norm_(model)
    assert not any("parametrizations" in k for k in model.state_dict())
    assert "dec.ups.0.weight" in model.state_dict()
    after = model.decode(codes, text, refer, noise_scale=0.0)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- attention


def _relative_attention_reference(
    att: MultiHeadAttention, x: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The spec's formula with explicit loops (one batch item)."""
    q, k, v = att.conv_q(x)[0], att.conv_k(x)[0], att.conv_v(x)[0]  # [C, T]
    t, d, w = x.shape[-1], att.head_dim, att.window_size
    heads = []
    for h in range(att.n_heads):
        qh, kh, vh = (m[h * d : (h + 1) * d].t() for m in (q, k, v))  # [T, d]
        s = torch.empty(t, t)
        for i in range(t):
            for j in range(t):
                qi = qh[i] / math.sqrt(d)
                s[i, j] = qi @ kh[j] + (qi @ att.emb_rel_k[0, j - i + w] if abs(j - i) <= w else 0.0)
        s = s.masked_fill(mask[0, 0] == 0, -1e4)
        p = torch.softmax(s, -1)
        o = p @ vh
        for i in range(t):
            for j in range(max(0, i - w), min(t, i + w + 1)):
                o[i] = o[i] + p[i, j] * att.emb_rel_v[0, j - i + w]
        heads.append(o.t())
    return att.conv_o(torch.cat(heads).unsqueeze(0))


@pytest.mark.parametrize("t", [1, 3, 6, 11])
def test_relative_attention_matches_the_formula(t: int) -> None:
    torch.manual_seed(t)
    att = MultiHeadAttention(8, 8, 2, window_size=2).eval()
    x = torch.randn(1, 8, t)
    valid = torch.ones(t)
    valid[max(1, t - 2) :] = 0
    mask = (valid[:, None] * valid[None, :]).view(1, 1, t, t)
    with torch.no_grad():
        want = _relative_attention_reference(att, x, mask)
        torch.testing.assert_close(att(x, x, mask), want, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- training


def _batch(config: SoVITSConfig, b: int = 2, frames: int = 14) -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    batch = dict(
        ssl=torch.randn(b, 768, frames),
        spec=torch.rand(b, 1025, frames) * 3,
        spec_lengths=torch.tensor([frames, frames - 4])[:b],
        text=torch.randint(0, 732, (b, 7)),
        text_lengths=torch.tensor([7, 5])[:b],
    )
    if config.is_pro:
        batch["sv_emb"] = torch.randn(b, config.sv_dim)
    return batch


@pytest.mark.parametrize("config", [_tiny(), _tiny_pro()], ids=["v2", "v2Pro"])
def test_training_forward_gives_gradients(config: SoVITSConfig) -> None:
    model = _model(config).train()
    batch = _batch(config)
    out = model(**batch, generator=torch.Generator().manual_seed(0))
    seg = config.segment_size // config.hop_length
    assert out.o.shape == (2, 1, config.segment_size)
    assert out.z.shape == out.z_p.shape == out.m_p.shape == out.logs_q.shape == (2, 96, 14)
    assert out.y_mask[1, 0].tolist() == [1.0] * 10 + [0.0] * 4
    assert float(out.commit_loss) == 0.0
    assert ((out.ids_slice >= 0) & (out.ids_slice <= batch["spec_lengths"] - seg)).all()
    loss = out.o.abs().mean() + ((out.z_p - out.m_p) ** 2 * out.y_mask).mean() + out.logs_q.mean()
    loss.backward()
    groups = ("enc_p", "dec", "flow", "enc_q", "ref_enc")
    if config.is_pro:
        groups += ("sv_emb", "prelu", "ge_to512")
    for group in groups:
        params = [p for n, p in model.named_parameters() if n.startswith(group + ".")]
        grads = [p.grad for p in params if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads), group
        assert any(g.abs().sum() > 0 for g in grads), group
    assert model.ssl_proj.weight.grad is None  # frozen quantizer path
    model.eval()  # no dropout: o must be dec() of the sliced posterior sample
    with torch.no_grad():
        for b in range(2):
            start = int(out.ids_slice[b])
            want = model.dec(out.z[b : b + 1, :, start : start + seg], g=out.ge[b : b + 1])
            torch.testing.assert_close(out.o[b : b + 1], want, rtol=1e-4, atol=1e-5)


def test_training_forward_needs_enc_q_and_long_enough_items() -> None:
    config = _tiny()
    with pytest.raises(ConfigError, match="enc_q"):
        SynthesizerTrn(config, include_enc_q=False)(**_batch(config))
    with pytest.raises(DataError, match="frames"):
        _model(config)(**_batch(config, frames=6))


def test_discriminator_forward_shapes_and_gradients() -> None:
    disc = MultiPeriodDiscriminator(_tiny())
    y, y_hat = torch.randn(2, 1, 401), torch.randn(2, 1, 401, requires_grad=True)
    d_r, d_g, fmap_r, fmap_g = disc(y, y_hat)
    assert len(d_r) == len(d_g) == len(fmap_r) == 6
    assert all(len(f) == 7 for f in fmap_r[:1]) and all(len(f) == 6 for f in fmap_r[1:])
    assert fmap_g[1][0].shape[-1] == 2  # period 2, padded by reflection to an even length
    sum(d.mean() for d in d_g).backward()
    assert y_hat.grad is not None and y_hat.grad.abs().sum() > 0


def test_decode_rejects_bad_inputs() -> None:
    model = _model(_tiny())
    codes, text = _codes_text()
    with pytest.raises(DataError):
        model.decode(codes, text, torch.rand(1, 500, 20))
    with pytest.raises(DataError):
        model.decode(codes, text, [])
    with pytest.raises(DataError):
        model.decode(codes[0], text, _refer())
