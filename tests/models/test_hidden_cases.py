"""Upstream cases the parity fixture does not cover: other versions, sizes and file variants.

Files are written the way upstream writes them (``torch.save`` of an OrderedDict with fp16 or
fp32 weights under upstream key names, a ``utils.HParams`` config tree, the ``05`` / ``06``
header of v2Pro / v2ProPlus, ``enc_q`` kept as in pretrained files, an s1 ``.ckpt`` whose
config has extra keys). Key names and shapes come from a table written from the spec
(§3.12), itself checked against the full-size upstream shape lists. Numerics are checked
against plain formulas from the spec, computed from the file's tensors, for configs other
than the fixture's (v1 bins, 4 heads, kernel 5, rates 8·5·4·2·2, Pro style vector, ...).
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import math
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from autocompress.models.gpt_sovits import (
    load_gpt,
    load_sovits,
    read_gpt,
    read_sovits,
    save_gpt,
    save_sovits,
    spectrogram,
    to_upstream_keys,
)
from autocompress.models.gpt_sovits.gpt import sampling_probs
from autocompress.models.gpt_sovits.modules import MultiHeadAttention

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOCS = Path(__file__).resolve().parents[2].parent / "shared" / "docs"
EOS = 1024


# --------------------------------------------------------------------------- upstream files


def _hps(version: str, **model: Any) -> dict[str, Any]:
    """An s2 ``hps`` tree as the web UI writes it (spec §1.1), with ``model`` overrides."""
    base = {
        "inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
        "kernel_size": 3, "p_dropout": 0.0 if "Pro" in version else 0.1, "resblock": "1",
        "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
        "upsample_rates": [10, 8, 2, 2, 2], "upsample_initial_channel": 768 if version == "v2ProPlus" else 512,
        "upsample_kernel_sizes": [20 if version == "v2ProPlus" else 16, 16, 8, 2, 2], "n_layers_q": 3,
        "use_spectral_norm": False, "gin_channels": 1024 if "Pro" in version else 512,
        "semantic_frame_rate": "25hz", "freeze_quantizer": True, "version": version,
    }  # fmt: skip
    base.update(model)
    return {
        "train": {"seed": 1234, "epochs": 8, "learning_rate": 1e-4, "betas": [0.8, 0.99], "eps": 1e-9,
                  "batch_size": 8, "fp16_run": True, "lr_decay": 0.999875, "segment_size": 20480,
                  "c_mel": 45, "c_kl": 1.0, "text_low_lr_rate": 0.4, "grad_ckpt": False,
                  "pretrained_s2G": "s2G.pth", "if_save_latest": True, "gpu_numbers": "0", "lora_rank": "32"},
        "data": {"max_wav_value": 32768.0, "sampling_rate": 32000, "filter_length": 2048, "hop_length": 640,
                 "win_length": 2048, "n_mel_channels": 128, "mel_fmin": 0.0, "mel_fmax": None, "add_blank": True,
                 "n_speakers": 300, "cleaned_text": True, "exp_dir": "logs/hidden"},
        "model": base,
        "s2_ckpt_dir": "logs/hidden", "content_module": "cnhubert", "save_weight_dir": "SoVITS_weights",
        "name": "hidden", "version": version, "pretrain": None, "resume_step": None,
    }  # fmt: skip


def upstream_sovits_shapes(m: dict[str, Any], version: str, enc_q: bool) -> dict[str, list[int]]:
    """Every key and shape upstream's ``SynthesizerTrn(**hps.model)`` has (spec §3.12)."""
    h, i_ch, f_ch, k_ff = m["hidden_channels"], m["inter_channels"], m["filter_channels"], m["kernel_size"]
    gin, u = m["gin_channels"], m["upsample_initial_channel"]
    shapes: dict[str, list[int]] = {}

    def conv(p: str, o: int, i: int, k: int, wn: bool = False, bias: bool = True) -> None:
        if wn:
            shapes[p + ".weight_g"], shapes[p + ".weight_v"] = [o, 1, 1], [o, i, k]
        else:
            shapes[p + ".weight"] = [o, i, k]
        if bias:
            shapes[p + ".bias"] = [o]

    def lin(p: str, o: int, i: int) -> None:
        shapes[p + ".weight"], shapes[p + ".bias"] = [o, i], [o]

    conv("enc_p.ssl_proj", h, 768, 1)
    for name, n in (("encoder_ssl", m["n_layers"] // 2), ("encoder_text", m["n_layers"]), ("encoder2", m["n_layers"] // 2)):
        for layer in range(n):
            p = f"enc_p.{name}"
            for e in ("k", "v"):
                shapes[f"{p}.attn_layers.{layer}.emb_rel_{e}"] = [1, 9, h // m["n_heads"]]
            for c in "qkvo":
                conv(f"{p}.attn_layers.{layer}.conv_{c}", h, h, 1)
            for n_ in (1, 2):
                shapes[f"{p}.norm_layers_{n_}.{layer}.gamma"] = shapes[f"{p}.norm_layers_{n_}.{layer}.beta"] = [h]
            conv(f"{p}.ffn_layers.{layer}.conv_1", f_ch, h, k_ff)
            conv(f"{p}.ffn_layers.{layer}.conv_2", h, f_ch, k_ff)
    shapes["enc_p.text_embedding.weight"] = [322 if version == "v1" else 732, h]
    for c in "qkvo":
        conv(f"enc_p.mrte.cross_attention.conv_{c}", 512, 512, 1)
    conv("enc_p.mrte.c_pre", 512, h, 1)
    conv("enc_p.mrte.text_pre", 512, h, 1)
    conv("enc_p.mrte.c_post", h, 512, 1)
    conv("enc_p.proj", 2 * i_ch, h, 1)
    conv("dec.conv_pre", u, i_ch, 7)
    for i, k in enumerate(m["upsample_kernel_sizes"]):
        shapes[f"dec.ups.{i}.bias"] = [u // 2 ** (i + 1)]
        shapes[f"dec.ups.{i}.weight_g"] = [u // 2**i, 1, 1]
        shapes[f"dec.ups.{i}.weight_v"] = [u // 2**i, u // 2 ** (i + 1), k]
    n = 0
    for i in range(len(m["upsample_rates"])):
        for k, dilations in zip(m["resblock_kernel_sizes"], m["resblock_dilation_sizes"]):
            for j in range(len(dilations)):
                for c in (1, 2):
                    conv(f"dec.resblocks.{n}.convs{c}.{j}", u // 2 ** (i + 1), u // 2 ** (i + 1), k, wn=True)
            n += 1
    shapes["dec.conv_post.weight"] = [1, u // 2 ** len(m["upsample_rates"]), 7]
    conv("dec.cond", u, gin, 1)
    if enc_q:
        conv("enc_q.pre", h, 1025, 1)
        for j in range(16):
            conv(f"enc_q.enc.in_layers.{j}", 2 * h, h, 5, wn=True)
            conv(f"enc_q.enc.res_skip_layers.{j}", 2 * h if j < 15 else h, h, 1, wn=True)
        conv("enc_q.enc.cond_layer", 2 * h * 16, gin, 1, wn=True)
        conv("enc_q.proj", 2 * i_ch, h, 1)
    for f in (0, 2, 4, 6):
        conv(f"flow.flows.{f}.pre", h, i_ch // 2, 1)
        for j in range(4):
            conv(f"flow.flows.{f}.enc.in_layers.{j}", 2 * h, h, 5, wn=True)
            conv(f"flow.flows.{f}.enc.res_skip_layers.{j}", 2 * h if j < 3 else h, h, 1, wn=True)
        conv(f"flow.flows.{f}.enc.cond_layer", 8 * h, gin, 1, wn=True)
        conv(f"flow.flows.{f}.post", i_ch // 2, h, 1)
    lin("ref_enc.spectral.0.fc", 128, 1025 if version == "v1" else 704)
    lin("ref_enc.spectral.3.fc", 128, 128)
    for t in (0, 1):
        conv(f"ref_enc.temporal.{t}.conv1.conv", 256, 128, 5)
    for w in ("w_qs", "w_ks", "w_vs", "fc"):
        lin(f"ref_enc.slf_attn.{w}", 128, 128)
    lin("ref_enc.fc.fc", gin, 128)
    conv("ssl_proj", 768, 768, 2)
    book = "quantizer.vq.layers.0._codebook."
    shapes.update({book + "inited": [1], book + "cluster_size": [1024], book + "embed": [1024, 768]})
    shapes[book + "embed_avg"] = [1024, 768]
    if "Pro" in version:
        lin("sv_emb", gin, 20480)
        lin("ge_to512", 512, gin)
        shapes["prelu.weight"] = [gin]
    return shapes


@contextlib.contextmanager
def _upstream_utils_module() -> Iterator[type]:
    """Install a module ``utils`` with an ``HParams`` like upstream's, for pickling."""
    module = types.ModuleType("utils")

    class HParams:  # upstream's attribute bag: nested dicts become HParams
        def __init__(self, **kwargs: Any) -> None:
            for key, value in kwargs.items():
                setattr(self, key, HParams(**value) if type(value) is dict else value)

        def __getitem__(self, key: str) -> Any:
            return getattr(self, key)

    HParams.__module__, HParams.__qualname__ = "utils", "HParams"
    module.HParams = HParams
    saved = sys.modules.get("utils")
    sys.modules["utils"] = module
    try:
        yield HParams
    finally:
        if saved is None:
            del sys.modules["utils"]
        else:
            sys.modules["utils"] = saved


def write_upstream_sovits(path: Path, weights: dict[str, torch.Tensor], hps: dict[str, Any], header: bytes) -> None:
    with _upstream_utils_module() as hparams:
        buffer = io.BytesIO()
        torch.save(collections.OrderedDict(weight=weights, config=hparams(**hps), info="8epoch_96iteration"), buffer)
    path.write_bytes(header + buffer.getvalue()[2:])


def random_weights(shapes: dict[str, list[int]], seed: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Trained-looking random tensors: weight_g != |weight_v|, LayerNorm near 1, a spread codebook."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        t = 0.1 * torch.randn(shape, generator=g)
        if key.endswith(("gamma", "_g")):
            t = 1 + t
        if key.endswith(("embed", "embed_avg")):
            t = 10 * t
        if key.endswith("inited"):
            t = torch.ones(shape)
        out[key] = t.to(dtype)
    return out


SOVITS_CASES = {
    # v1: all 1025 bins, 322 symbols; 4 heads, kernel 5, rates 8*5*4*2*2, inter != hidden.
    "v1": dict(header=b"PK", dtype=torch.float16, enc_q=False, model=dict(
        inter_channels=128, n_heads=4, n_layers=3, filter_channels=96, kernel_size=5, upsample_initial_channel=64,
        upsample_rates=[8, 5, 4, 2, 2], upsample_kernel_sizes=[16, 10, 8, 4, 4], resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 3, 5], [1, 2, 3]])),
    # v2Pro: a pretrained-style fp32 file that still has enc_q; 3 heads, gin 64.
    "v2Pro": dict(header=b"05", dtype=torch.float32, enc_q=True, model=dict(
        n_heads=3, n_layers=2, filter_channels=64, upsample_initial_channel=32, resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3, 5]], gin_channels=64)),
    # v2ProPlus: ups.0 kernel 20 (padding 5), gin 128, fp16 with enc_q.
    "v2ProPlus": dict(header=b"06", dtype=torch.float16, enc_q=True, model=dict(
        n_layers=2, filter_channels=64, upsample_initial_channel=64, resblock_kernel_sizes=[3, 7],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], gin_channels=128)),
}  # fmt: skip


@pytest.fixture(scope="module")
def sovits_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict, dict]]:
    """version -> (file, hps, weights as written)."""
    folder = tmp_path_factory.mktemp("upstream_sovits")
    files = {}
    for seed, (version, case) in enumerate(SOVITS_CASES.items()):
        hps = _hps(version, **case["model"])
        weights = random_weights(upstream_sovits_shapes(hps["model"], version, case["enc_q"]), seed, case["dtype"])
        path = folder / f"{version}.pth"
        write_upstream_sovits(path, weights, hps, case["header"])
        files[version] = (path, hps, weights)
    return files


@pytest.fixture(scope="module")
def sovits_models(sovits_files):  # noqa: ANN001, ANN201
    return {v: read_sovits(path) for v, (path, _, _) in sovits_files.items()}


def _fold(w: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """A weight-normed tensor: g * v / |v| with the norm over every axis but 0 (spec §3.1)."""
    g, v = w[prefix + ".weight_g"].float(), w[prefix + ".weight_v"].float()
    return g * v / v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def _f32(w: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    return w[key].float()


# --------------------------------------------------------------------------- SoVITS: files


@pytest.mark.skipif(not DOCS.is_dir(), reason=f"spec folder {DOCS} is absent")
def test_shape_table_equals_upstream_full_size_lists() -> None:
    """The spec-derived shape table used below reproduces upstream's own lists exactly."""
    listed = json.loads((DOCS / "sovits_state_dict_shapes.json").read_text())
    full = {"v1": {}, "v2": {}, "v2Pro": {}, "v2ProPlus": {}}
    for version in full:
        table = upstream_sovits_shapes(_hps(version)["model"], version, enc_q=True)
        assert table == {k: list(s) for k, s in listed["SynthesizerTrn_" + version].items()}, version


@pytest.mark.parametrize("version", list(SOVITS_CASES))
def test_upstream_file_loads_with_its_sizes_and_exact_weights(version, sovits_files, sovits_models) -> None:  # noqa: ANN001
    path, hps, weights = sovits_files[version]
    case, ckpt = SOVITS_CASES[version], sovits_models[version]
    assert ckpt.version == version and ckpt.info.header == case["header"] and ckpt.has_enc_q == case["enc_q"]
    c = ckpt.config
    for name in ("n_heads", "n_layers", "filter_channels", "kernel_size", "inter_channels", "gin_channels"):
        assert getattr(c, name) == hps["model"][name], name
    assert list(c.upsample_rates) == hps["model"]["upsample_rates"]
    assert list(c.upsample_kernel_sizes) == hps["model"]["upsample_kernel_sizes"]
    assert (c.n_symbols, c.ref_bins) == ((322, 1025) if version == "v1" else (732, 704))
    state = to_upstream_keys(ckpt.model.state_dict())
    assert set(state) == set(weights)
    for key, value in weights.items():  # loaded as float32, bit for bit
        assert state[key].dtype == torch.float32 and torch.equal(state[key], value.float()), key
    assert load_sovits(path).training is False


def _decoded_length(frames: int, rates: list[int], kernels: list[int]) -> int:
    """ConvTranspose1d output length through the upsample stack (padding (k - r) // 2)."""
    for r, k in zip(rates, kernels):
        frames = (frames - 1) * r - 2 * ((k - r) // 2) + k
    return frames


@pytest.mark.parametrize("version", list(SOVITS_CASES))
def test_decode_and_extract_latent_run_with_upstream_lengths(version, sovits_files, sovits_models) -> None:  # noqa: ANN001
    _, hps, weights = sovits_files[version]
    model, c = sovits_models[version].model, sovits_models[version].config
    g = torch.Generator().manual_seed(5)
    spec = spectrogram(0.3 * torch.randn(1, 12800, generator=g))
    codes = torch.randint(0, 1024, (1, 1, 6), generator=g)
    text = torch.randint(0, c.n_symbols, (1, 7), generator=g)
    extra = {"sv_emb": torch.randn(1, 20480, generator=g)} if "Pro" in version else {}
    rates, kernels = hps["model"]["upsample_rates"], hps["model"]["upsample_kernel_sizes"]
    for speed, frames in ((1.0, 12), (1.25, int(12 / 1.25) + 1), (0.8, int(12 / 0.8) + 1)):
        wav = model.decode(codes, text, spec, noise_scale=0.0, speed=speed, **extra)
        assert wav.shape == (1, 1, _decoded_length(frames, rates, kernels)) and torch.isfinite(wav).all()
        assert wav.abs().max() <= 1
    # extract_latent: nearest codeword (squared Euclidean) of ssl_proj (k 2, s 2) frames
    ssl = torch.randn(1, 768, 11, generator=g)
    proj = F.conv1d(ssl, _f32(weights, "ssl_proj.weight"), _f32(weights, "ssl_proj.bias"), stride=2)  # [1, 768, 5]
    book = _f32(weights, "quantizer.vq.layers.0._codebook.embed")
    want = torch.cdist(proj[0].T.double(), book.double()).argmin(dim=1)
    assert torch.equal(model.extract_latent(ssl), want.view(1, 1, 5))


@pytest.mark.parametrize("version", list(SOVITS_CASES))
def test_save_load_round_trip_is_bitwise(version, sovits_models, tmp_path) -> None:  # noqa: ANN001
    ckpt = sovits_models[version]
    case = SOVITS_CASES[version]
    half = case["dtype"] == torch.float16  # an fp32 file round-trips with half=False
    path = save_sovits(ckpt.model, tmp_path / "again.pth", include_enc_q=ckpt.has_enc_q, half=half)
    assert path.read_bytes()[:2] == case["header"]
    again = read_sovits(path)
    assert again.version == version and again.config == ckpt.config and again.has_enc_q == ckpt.has_enc_q
    before, after = ckpt.model.state_dict(), again.model.state_dict()
    assert set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)
    if not half:  # the default writes fp16, as upstream's exporter does
        rounded = read_sovits(save_sovits(ckpt.model, tmp_path / "fp16.pth")).model.state_dict()
        assert not rounded.keys() & {k for k in before if k.startswith("enc_q.")}
        assert all(torch.equal(rounded[k], before[k].half().float()) for k in rounded)


def test_upstream_expressible_follows_upstreams_constructor(sovits_models) -> None:  # noqa: ANN001
    """inter_channels is a free argument upstream; hidden_channels is pinned to MRTE's 192."""
    assert all(ckpt.config.is_upstream_expressible for ckpt in sovits_models.values())
    assert sovits_models["v1"].config.inter_channels == 128
    narrow = sovits_models["v1"].config.replace(hidden_channels=96)
    assert not narrow.is_upstream_expressible


# --------------------------------------------------------------------------- SoVITS: numerics


def test_relative_attention_window_formula_four_heads() -> None:
    """§3.2 with 4 heads, d_k 12, window 4, key padding; T below, at and above the window."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(48, 48, 4, window_size=4).eval()
    heads, dk, w = 4, 12, 4
    for t in (2, 5, 13):
        x = torch.randn(2, 48, t)
        mask = torch.ones(2, 1, t)
        mask[1, :, t - 1 :] = 0  # item 1: last frame is padding
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        q, k, v = attn.conv_q(x), attn.conv_k(x), attn.conv_v(x)
        q, k, v = (z.view(2, heads, dk, t) for z in (q, k, v))  # head-major channels
        ek, ev = attn.emb_rel_k[0], attn.emb_rel_v[0]  # [2w + 1, d_k]
        out = torch.zeros(2, heads, dk, t)
        for i in range(t):
            qi = q[..., i] / math.sqrt(dk)  # [B, H, d_k]
            scores = torch.stack(
                [(qi * k[..., j]).sum(-1) + ((qi * ek[j - i + w]).sum(-1) if abs(j - i) <= w else 0) for j in range(t)],
                dim=-1,
            )  # [B, H, T]
            scores = scores.masked_fill(attn_mask[:, :, i] == 0, -1e4)
            p = torch.softmax(scores, dim=-1)
            for j in range(t):
                rel = ev[j - i + w] if abs(j - i) <= w else torch.zeros(dk)
                out[..., i] += p[..., j : j + 1] * (v[..., j] + rel)
        want = attn.conv_o(out.reshape(2, heads * dk, t))
        torch.testing.assert_close(attn(x, x, attn_mask), want, atol=1e-5, rtol=1e-5)


def _mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(F.softplus(x))


def reference_style_encoder(w: dict[str, torch.Tensor], spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MelStyleEncoder from §3.6 on the file's tensors: ``[B, bins, T]`` -> ``[B, gin, 1]``."""
    f = lambda key: _f32(w, "ref_enc." + key)  # noqa: E731
    pad = (mask == 0).squeeze(1)  # [B, T]
    x = spec.transpose(1, 2)
    x = _mish(F.linear(x, f("spectral.0.fc.weight"), f("spectral.0.fc.bias")))
    x = _mish(F.linear(x, f("spectral.3.fc.weight"), f("spectral.3.fc.bias")))
    for i in (0, 1):
        z = F.conv1d(x.transpose(1, 2), f(f"temporal.{i}.conv1.conv.weight"), f(f"temporal.{i}.conv1.conv.bias"), padding=2)
        x = x + (z[:, :128] * torch.sigmoid(z[:, 128:])).transpose(1, 2)
    x = x.masked_fill(pad.unsqueeze(-1), 0)
    q, k, v = (F.linear(x, f(f"slf_attn.{n}.weight"), f(f"slf_attn.{n}.bias")) for n in ("w_qs", "w_ks", "w_vs"))
    heads = []
    for h in range(2):
        part = slice(64 * h, 64 * (h + 1))
        scores = q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(128)  # temperature sqrt(d_model)
        scores = scores.masked_fill(pad.unsqueeze(1), float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v[..., part])
    x = F.linear(torch.cat(heads, -1), f("slf_attn.fc.weight"), f("slf_attn.fc.bias")) + x
    x = F.linear(x, f("fc.fc.weight"), f("fc.fc.bias"))  # [B, T, gin]
    valid = (~pad).float().unsqueeze(-1)
    return ((x * valid).sum(1) / valid.sum(1)).unsqueeze(-1)


def test_v1_style_encoder_formula_all_bins_and_padding(sovits_files, sovits_models) -> None:  # noqa: ANN001
    _, _, weights = sovits_files["v1"]
    ref_enc = sovits_models["v1"].model.ref_enc
    g = torch.Generator().manual_seed(2)
    spec = torch.rand(2, 1025, 9, generator=g) * 3
    mask = torch.ones(2, 1, 9)
    mask[1, :, 6:] = 0
    torch.testing.assert_close(ref_enc(spec, mask), reference_style_encoder(weights, spec, mask), atol=1e-5, rtol=1e-5)
    # decode's reference path feeds every one of v1's 1025 bins
    model = sovits_models["v1"].model
    hi = spec[:1].clone()
    hi[:, 900:] += 1.0
    assert not torch.allclose(model.style(spec[:1]), model.style(hi))


def test_decoder_formula_odd_rates_and_two_resblock_kernels(sovits_files, sovits_models) -> None:  # noqa: ANN001
    """§3.9 for rates 8*5*4*2*2, kernels 16/10/8/4/4, resblocks 3 and 5: weight norm folded by hand."""
    _, hps, w = sovits_files["v1"]
    m = hps["model"]
    g = torch.Generator().manual_seed(3)
    z = torch.randn(1, m["inter_channels"], 5, generator=g)
    ge = torch.randn(1, m["gin_channels"], 1, generator=g)
    x = F.conv1d(z, _f32(w, "dec.conv_pre.weight"), _f32(w, "dec.conv_pre.bias"), padding=3)
    x = x + F.conv1d(ge, _f32(w, "dec.cond.weight"), _f32(w, "dec.cond.bias"))
    n_k = len(m["resblock_kernel_sizes"])
    for i, (r, k) in enumerate(zip(m["upsample_rates"], m["upsample_kernel_sizes"])):
        x = F.conv_transpose1d(
            F.leaky_relu(x, 0.1), _fold(w, f"dec.ups.{i}"), _f32(w, f"dec.ups.{i}.bias"), stride=r, padding=(k - r) // 2
        )
        total = 0
        for j, (kr, dilations) in enumerate(zip(m["resblock_kernel_sizes"], m["resblock_dilation_sizes"])):
            p, y = f"dec.resblocks.{i * n_k + j}", x
            for c, d in enumerate(dilations):
                t = F.conv1d(F.leaky_relu(y, 0.1), _fold(w, f"{p}.convs1.{c}"), _f32(w, f"{p}.convs1.{c}.bias"),
                             dilation=d, padding=(kr * d - d) // 2)  # fmt: skip
                t = F.conv1d(F.leaky_relu(t, 0.1), _fold(w, f"{p}.convs2.{c}"), _f32(w, f"{p}.convs2.{c}.bias"),
                             padding=(kr - 1) // 2)  # fmt: skip
                y = y + t
            total = total + y
        x = total / n_k
    want = torch.tanh(F.conv1d(F.leaky_relu(x, 0.01), _f32(w, "dec.conv_post.weight"), padding=3))
    got = sovits_models["v1"].model.dec(z, g=ge)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def _linear_resample(y: torch.Tensor, size: int) -> torch.Tensor:
    """1-D linear interpolation with align_corners=False, written out: ``[B, C, T]`` -> ``[B, C, size]``."""
    t = y.shape[-1]
    src = ((torch.arange(size, dtype=torch.float64) + 0.5) * t / size - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    frac = (src - lo).to(y.dtype)
    return y[..., lo] * (1 - frac) + y[..., hi] * frac


@pytest.mark.parametrize("version", ["v2Pro", "v2ProPlus"])
def test_pro_decode_follows_the_spec_algorithm(version, sovits_files, sovits_models) -> None:  # noqa: ANN001
    """§3.11 for two references: sv added before PReLU, mean after it, ge_to512 only for MRTE,
    nearest x2 codes, speed resampling to int(T / speed) + 1 frames after encoder2."""
    _, _, w = sovits_files[version]
    model = sovits_models[version].model
    g = torch.Generator().manual_seed(4)
    refs = [spectrogram(0.3 * torch.randn(1, n, generator=g)) for n in (9600, 16000)]
    svs = [torch.randn(1, 20480, generator=g) for _ in refs]
    codes = torch.randint(0, 1024, (1, 1, 5), generator=g)
    text = torch.randint(0, 732, (1, 8), generator=g)

    styles = []
    for spec, sv in zip(refs, svs):
        ge = model.ref_enc(spec[:, :704], torch.ones(1, 1, spec.shape[-1]))
        ge = ge + F.linear(sv, _f32(w, "sv_emb.weight"), _f32(w, "sv_emb.bias")).unsqueeze(-1)
        slope = _f32(w, "prelu.weight").view(1, -1, 1)
        styles.append(torch.where(ge >= 0, ge, slope * ge))  # per-channel PReLU
    ge = torch.stack(styles).mean(0)  # [1, gin, 1]
    ge512 = F.linear(ge[..., 0], _f32(w, "ge_to512.weight"), _f32(w, "ge_to512.bias")).unsqueeze(-1)
    feats = _f32(w, "quantizer.vq.layers.0._codebook.embed")[codes[0, 0]].T.unsqueeze(0)  # [1, 768, 5]
    feats = feats.repeat_interleave(2, dim=-1)  # nearest x2 to 50 Hz
    lengths = torch.tensor([10])
    y, _, _, _ = model.enc_p(feats, lengths, text, torch.tensor([8]), ge512)  # encoder2 output at speed 1
    for speed in (1.0, 1.3):
        frames = 10 if speed == 1.0 else int(10 / speed) + 1
        ys = y if speed == 1.0 else _linear_resample(y, frames)
        stats = F.conv1d(ys, _f32(w, "enc_p.proj.weight"), _f32(w, "enc_p.proj.bias"))
        m_p = stats[:, : model.config.inter_channels]
        z = model.flow(m_p, torch.ones(1, 1, frames), g=ge, reverse=True)
        want = model.dec(z, g=ge)
        for sv_arg in (svs, torch.cat(svs)):  # a list, or one [n_refs, 20480] tensor
            got = model.decode(codes, text, refs, noise_scale=0.0, speed=speed, sv_emb=sv_arg)
            torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


# --------------------------------------------------------------------------- GPT


GPT_MODEL = {"vocab_size": 1025, "phoneme_vocab_size": 512, "embedding_dim": 256, "hidden_dim": 256, "head": 8,
             "linear_units": 2048, "n_layer": 2, "dropout": 0, "EOS": 1024, "random_bert": 0}  # fmt: skip


def upstream_gpt_shapes(m: dict[str, Any]) -> dict[str, list[int]]:
    """Keys and shapes of an s1 ``weight`` dict (spec §5.1); the FFN is 4 * hidden wide."""
    d = m["hidden_dim"]
    shapes = {
        "model.bert_proj.weight": [d, 1024], "model.bert_proj.bias": [d],
        "model.ar_text_embedding.word_embeddings.weight": [m["phoneme_vocab_size"], d],
        "model.ar_text_position.alpha": [1], "model.ar_audio_embedding.word_embeddings.weight": [m["vocab_size"], d],
        "model.ar_audio_position.alpha": [1],
    }  # fmt: skip
    for layer in range(m["n_layer"]):
        p = f"model.h.layers.{layer}."
        shapes.update({
            p + "self_attn.in_proj_weight": [3 * d, d], p + "self_attn.in_proj_bias": [3 * d],
            p + "self_attn.out_proj.weight": [d, d], p + "self_attn.out_proj.bias": [d],
            p + "linear1.weight": [4 * d, d], p + "linear1.bias": [4 * d],
            p + "linear2.weight": [d, 4 * d], p + "linear2.bias": [d],
            p + "norm1.weight": [d], p + "norm1.bias": [d], p + "norm2.weight": [d], p + "norm2.bias": [d],
        })  # fmt: skip
    shapes["model.ar_predict_layer.weight"] = [m["vocab_size"], d]
    return shapes


def _gpt_weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weights = collections.OrderedDict()
    for key, shape in upstream_gpt_shapes(GPT_MODEL).items():
        t = (0.08 if len(shape) > 1 else 0.05) * torch.randn(shape, generator=g)
        if key.endswith(("norm1.weight", "norm2.weight", "alpha")):
            t = 1 + t
        weights[key] = 4 * t if "ar_predict_layer" in key else t  # peaky, trained-like logits
    return weights


def _write_s1(path: Path, weights: dict[str, torch.Tensor]) -> None:
    config = {
        "data": {"max_sec": 54, "pad_val": 1024, "num_workers": 4, "max_eval_sample": 8},
        "model": dict(GPT_MODEL, future_option=[1, 2]),
        "train": {"batch_size": 8, "epochs": 15, "if_dpo": True, "exp_name": "hidden", "precision": "16-mixed"},
        "optimizer": {"lr": 0.01}, "inference": {"top_k": 5}, "pretrained_s1": "s1.ckpt",
        "train_semantic_path": "6-name2semantic.tsv", "output_dir": "logs", "unknown_top_level": {"x": 1},
    }  # fmt: skip
    torch.save(collections.OrderedDict(weight=weights, config=config, info="GPT-e15"), path)


def _sine_table(n: int, d: int) -> torch.Tensor:
    position = torch.arange(0, n, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)
    return table


def reference_logits(w: dict[str, torch.Tensor], phones: torch.Tensor, bert: torch.Tensor, codes: list[int]) -> torch.Tensor:
    """Next-code logits by full recomputation (§5.2-§5.4): ``[vocab]``."""
    f = lambda key: w["model." + key].float()  # noqa: E731
    d, heads = GPT_MODEL["hidden_dim"], GPT_MODEL["head"]
    tx, ty = phones.numel(), len(codes)
    pe = _sine_table(tx + ty + 1, d)
    x = f("ar_text_embedding.word_embeddings.weight")[phones] + F.linear(bert.T, f("bert_proj.weight"), f("bert_proj.bias"))
    x = x + f("ar_text_position.alpha") * pe[:tx]
    y = f("ar_audio_embedding.word_embeddings.weight")[torch.tensor(codes, dtype=torch.long)]
    h = torch.cat([x, y + f("ar_audio_position.alpha") * pe[:ty]])
    i, j = torch.arange(tx + ty)[:, None], torch.arange(tx + ty)[None]
    blocked = ((i < tx) & (j >= tx)) | ((i >= tx) & (j > i))  # prefix LM
    hd = d // heads
    for layer in range(GPT_MODEL["n_layer"]):
        p = f"h.layers.{layer}."
        q, k, v = F.linear(h, f(p + "self_attn.in_proj_weight"), f(p + "self_attn.in_proj_bias")).split(d, -1)
        outs = []
        for n in range(heads):
            part = slice(n * hd, (n + 1) * hd)
            scores = (q[:, part] @ k[:, part].T / math.sqrt(hd)).masked_fill(blocked, float("-inf"))
            outs.append(torch.softmax(scores, -1) @ v[:, part])
        a = F.linear(torch.cat(outs, 1), f(p + "self_attn.out_proj.weight"), f(p + "self_attn.out_proj.bias"))
        h = F.layer_norm(h + a, (d,), f(p + "norm1.weight"), f(p + "norm1.bias"), 1e-5)
        ffn = F.linear(torch.relu(F.linear(h, f(p + "linear1.weight"), f(p + "linear1.bias"))), f(p + "linear2.weight"), f(p + "linear2.bias"))
        h = F.layer_norm(h + ffn, (d,), f(p + "norm2.weight"), f(p + "norm2.bias"), 1e-5)
    return F.linear(h[-1], f("ar_predict_layer.weight"))


def reference_greedy(w, phones, bert, prompt, penalty, max_new):  # noqa: ANN001, ANN201
    """Upstream's naive decoder with top_k=1 (§5.6): EOS banned for steps 0..10, in-place penalty
    over every earlier code, stop when the penalised argmax is EOS (that token is dropped)."""
    y = [] if prompt is None else prompt[0].tolist()
    start = len(y)
    for step in range(max_new):
        logits = reference_logits(w, phones[0], bert[0], y)
        if step < 11:
            logits = logits[:EOS].clone()
        for t in set(y):
            logits[t] = logits[t] * penalty if logits[t] < 0 else logits[t] / penalty
        token = int(logits.argmax())
        if token == EOS:
            return y[start:], "eos"
        y.append(token)
    return y[start:], "cap"


@pytest.fixture(scope="module")
def s1_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("s1") / "hidden-e15.ckpt"
    weights = _gpt_weights(11)  # fp32, as a pretrained file may be
    _write_s1(path, weights)
    return path, weights


def test_s1_file_with_extra_config_keys_and_fp32_weights(s1_file, tmp_path) -> None:  # noqa: ANN001
    path, weights = s1_file
    ckpt = read_gpt(path)
    c = ckpt.config
    assert (c.hidden_dim, c.n_head, c.n_layer, c.ffn_dim, c.phoneme_vocab_size, c.version) == (256, 8, 2, 1024, 512, "v1")
    state = ckpt.model.state_dict()
    assert {"model." + k for k in state} == set(weights)
    assert all(torch.equal(state[k.removeprefix("model.")], v) for k, v in weights.items())
    again = load_gpt(save_gpt(ckpt.model, tmp_path / "fp32.ckpt", half=False))
    assert all(torch.equal(again.state_dict()[k], v) for k, v in state.items())
    rounded = load_gpt(save_gpt(ckpt.model, tmp_path / "fp16.ckpt"))
    assert all(torch.equal(rounded.state_dict()[k], v.half().float()) for k, v in state.items())


def _gpt_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    phones = torch.randint(0, 322, (1, 13), generator=g)
    return phones, 0.1 * torch.randn(1, 1024, 13, generator=g), torch.randint(0, 1024, (1, 9), generator=g)


@pytest.mark.parametrize("penalty, with_prompt", [(1.35, True), (1.0, True), (1.7, True), (1.35, False), (1.0, False)])
def test_greedy_generation_equals_the_naive_decoder(s1_file, penalty, with_prompt) -> None:  # noqa: ANN001
    path, weights = s1_file
    gpt = load_gpt(path)
    phones, bert, prompt = _gpt_inputs(1)
    prompt = prompt if with_prompt else None
    logits = gpt.prefill_logits(phones, bert, prompt)
    assert not logits.requires_grad
    torch.testing.assert_close(logits[0], reference_logits(weights, phones[0], bert[0], [] if prompt is None else prompt[0].tolist()), atol=1e-4, rtol=1e-4)
    want, _ = reference_greedy(weights, phones, bert, prompt, penalty, 18)
    out = gpt.generate_detailed(phones, bert, prompt, top_k=1, repetition_penalty=penalty, max_new_tokens=18)
    assert out.tokens[0].tolist() == want and out.stop_reason == "max_new_tokens"
    assert out.idx == (17 if with_prompt else 0)  # upstream returns idx 0 when reference-free
    assert gpt.generate(phones, bert, prompt, top_k=1, repetition_penalty=penalty, max_new_tokens=18)[0].tolist() == want


def test_eos_stop_is_decided_on_the_penalised_logits(s1_file, tmp_path) -> None:  # noqa: ANN001
    """EOS is second to a prompt code in the raw logits; the penalty makes it first from step 11."""
    _, weights = s1_file
    weights = dict(weights)
    phones, bert, prompt = _gpt_inputs(2)
    favourite = int(prompt[0, 0])
    last = f"model.h.layers.{GPT_MODEL['n_layer'] - 1}.norm2.bias"
    weights[last] = weights[last].clone()
    weights[last][0] = 20.0  # the final hidden state's channel 0 is ~20
    head = weights["model.ar_predict_layer.weight"] = 0.02 * weights["model.ar_predict_layer.weight"]
    head[EOS, 0], head[favourite, 0] = 0.5, 0.6  # logits ~10 (EOS) and ~12 (a prompt code)
    _write_s1(tmp_path / "eos.ckpt", weights)
    gpt = load_gpt(tmp_path / "eos.ckpt")
    for prompt_arg in (prompt, None):
        no_penalty = gpt.generate_detailed(phones, bert, prompt_arg, top_k=1, repetition_penalty=1.0, max_new_tokens=20)
        assert no_penalty.stop_reason == "max_new_tokens" and set(no_penalty.tokens[0, 11:].tolist()) == {favourite}
        with_penalty = gpt.generate_detailed(phones, bert, prompt_arg, top_k=1, repetition_penalty=1.35, max_new_tokens=20)
        want, why = reference_greedy(weights, phones, bert, prompt_arg, 1.35, 20)
        assert why == "eos" and with_penalty.stop_reason == "eos"
        assert with_penalty.tokens[0].tolist() == want and len(want) == 11  # EOS impossible before step 11
        assert int(with_penalty.logits_raw[11].argmax()) == favourite  # the raw argmax is not EOS


def test_top_p_runs_before_temperature() -> None:
    """§5.6: top-p on the raw logits, then temperature: token 1 survives top-p 0.95 of [2, 1, 0]
    (cumulative 0.665, 0.91) and keeps its tempered probability; tempering first would drop it."""
    probs = sampling_probs(torch.tensor([[2.0, 1.0, 0.0]]), top_k=3, top_p=0.95, temperature=0.1)
    want = torch.softmax(torch.tensor([20.0, 10.0]), 0)
    torch.testing.assert_close(probs[0], torch.cat([want, torch.zeros(1)]))
