"""Checkpoint I/O: upstream files, round trips, upstream-compatible saving, bad files, manifests."""

from __future__ import annotations

import collections
import io
import json
import os
import pathlib
import pickle
import pickletools
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from autocompress.exceptions import CheckpointError
from autocompress.models.gpt_sovits import (
    SynthesizerTrn,
    Text2SemanticGPT,
    inspect_checkpoint,
    load_gpt,
    load_sovits,
    read_gpt,
    read_sovits,
    save_gpt,
    save_sovits,
)
from autocompress.models.gpt_sovits.checkpoint import (
    HParams,
    _pin_sovits_sizes,
    checkpoint_step,
    detect_sovits_version,
    _write,
    upstream_gpt_state_dict,
    upstream_sovits_state_dict,
)
from autocompress.models.gpt_sovits.sovits import to_upstream_keys
from autocompress.models.gpt_sovits.config import GPTConfig, SoVITSConfig, gpt_tiny, sovits_tiny

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
CASE = FIXTURES / "parity_A"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"fixture folder {FIXTURES} is absent")
MANIFESTS = sorted((FIXTURES / "manifests").glob("*.json")) if FIXTURES.is_dir() else []
pytestmark = pytest.mark.usefixtures("one_torch_thread")

UPSTREAM_GLOBALS = {"collections.OrderedDict", "torch.HalfStorage", "torch._utils._rebuild_tensor_v2"}


def _fp16_rounded(model: torch.nn.Module) -> torch.nn.Module:
    """Round every saved float tensor to fp16 precision (what a file holds), keep fp32."""
    with torch.no_grad():
        for t in model.state_dict().values():  # shares storage with the parameters and buffers
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _pickle_globals(path: Path) -> set[str]:
    data = b"PK" + path.read_bytes()[2:]
    archive = zipfile.ZipFile(io.BytesIO(data))
    name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    return {
        arg.replace(" ", ".")
        for op, arg, _ in pickletools.genops(archive.read(name))
        if op.name in ("GLOBAL", "STACK_GLOBAL")
    }


def _one_line_error(fn, *args, match: str) -> str:  # noqa: ANN001
    with pytest.raises(CheckpointError, match=match) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- upstream fixture files


@needs_fixtures
def test_fixture_sovits_loads_with_upstream_values():
    ckpt = read_sovits(CASE / "sovits.pth")
    assert ckpt.version == "v2" and not ckpt.has_enc_q and not ckpt.model.has_enc_q
    assert ckpt.info.info == "8epoch_200iteration" and ckpt.info.header == b"PK"
    assert ckpt.config.filter_channels == 256 and ckpt.config.upsample_initial_channel == 64
    assert not ckpt.model.training
    assert all(p.dtype == torch.float32 for p in ckpt.model.parameters())
    # Every stored value arrives unchanged under our names.
    with torch.serialization.safe_globals([(HParams, "utils.HParams")]):
        stored = torch.load(CASE / "sovits.pth", weights_only=True, map_location="cpu")["weight"]
    ours = ckpt.model.state_dict()
    assert len(ours) == len(stored) == 529
    for key, value in stored.items():
        name = key.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"
        )
        assert torch.equal(ours[name], value.to(ours[name].dtype)), key
    assert ckpt.info.n_params == sum(p.numel() for p in ckpt.model.parameters())


@needs_fixtures
def test_fixture_gpt_loads_and_matches_upstream_logits():
    ckpt = read_gpt(CASE / "gpt.ckpt")
    assert ckpt.version == "v2" and ckpt.info.info == "GPT-e15"
    assert ckpt.config.hidden_dim == 128 and ckpt.config.n_layer == 3
    inputs, expected = np.load(CASE / "inputs.npz"), np.load(CASE / "expected.npz")
    with torch.no_grad():
        logits = ckpt.model.prefill_logits(
            torch.from_numpy(inputs["gpt_phones"]), torch.from_numpy(inputs["gpt_bert"]),
            torch.from_numpy(inputs["gpt_prompt"]),
        )
    np.testing.assert_allclose(logits.numpy(), expected["gpt_prefill_logits"], atol=1e-4, rtol=1e-4)


@needs_fixtures
def test_wrong_loader_says_which_to_use():
    _one_line_error(load_sovits, CASE / "gpt.ckpt", match="GPT .*not a SoVITS one; pass it as --gpt")
    _one_line_error(load_gpt, CASE / "sovits.pth", match="SoVITS .*not a GPT one; pass it as --sovits")


@needs_fixtures
def test_map_location():
    model = load_gpt(CASE / "gpt.ckpt", map_location="meta")
    assert next(model.parameters()).device.type == "meta"


# --------------------------------------------------------------------------- round trips


def _tiny_variants() -> list[SoVITSConfig]:
    tiny = sovits_tiny()
    pro = tiny.replace(version="v2Pro", gin_channels=128, sv_dim=256, mpd_periods=(2, 3, 5, 7, 11, 17, 23))
    return [
        tiny,
        tiny.replace(version="v1", n_symbols=322, ref_bins=1025),
        pro,
        pro.replace(version="v2ProPlus", upsample_kernel_sizes=(20, 16, 8, 2, 2)),
    ]


def _decode_inputs(config: SoVITSConfig):
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (1, 1, 6), generator=g)
    text = torch.randint(0, config.n_symbols, (1, 5), generator=g)
    refer = torch.rand(1, config.spec_channels, 20, generator=g)
    sv = torch.randn(1, config.sv_dim, generator=g) if config.is_pro else None
    return codes, text, refer, sv


@pytest.mark.parametrize("config", _tiny_variants(), ids=lambda c: c.version)
def test_sovits_round_trip(tmp_path, config):
    torch.manual_seed(1)
    model = _fp16_rounded(_randomize(SynthesizerTrn(config, include_enc_q=False), 1)).eval()
    path = save_sovits(model, tmp_path / "voice.pth", epoch=3, step=40)
    header = {"v2Pro": b"05", "v2ProPlus": b"06"}.get(config.version, b"PK")
    assert path.read_bytes()[:2] == header
    ckpt = read_sovits(path)
    assert ckpt.version == config.version and ckpt.config == config and not ckpt.has_enc_q
    assert ckpt.info.info == "3epoch_40iteration"
    loaded = ckpt.model
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    if config.version != "v2Pro":
        return  # same class, config and weights; one decode below shows the outputs agree
    codes, text, refer, sv = _decode_inputs(config)
    a = model.decode(codes, text, refer, noise_scale=0.0, sv_emb=sv)
    b = loaded.decode(codes, text, refer, noise_scale=0.0, sv_emb=sv)
    assert torch.equal(a, b)


def test_sovits_enc_q_is_kept_only_when_asked(tmp_path):
    model = SynthesizerTrn(sovits_tiny(), include_enc_q=True)
    save_sovits(model, tmp_path / "user.pth")
    save_sovits(model, tmp_path / "pretrained.pth", include_enc_q=True)
    user, pretrained = read_sovits(tmp_path / "user.pth"), read_sovits(tmp_path / "pretrained.pth")
    assert not user.has_enc_q and not user.model.has_enc_q
    assert pretrained.has_enc_q and pretrained.model.has_enc_q
    torch.testing.assert_close(
        pretrained.model.enc_q.proj.weight, model.enc_q.proj.weight.half().float(), rtol=0, atol=0
    )


def test_compressed_sovits_config_round_trips(tmp_path):
    config = sovits_tiny().replace(enc_layer_heads=(2, 1, 2, 1), enc_layer_filter=(256, 128, 64, 200))
    model = SynthesizerTrn(config, include_enc_q=False)
    ckpt = read_sovits(save_sovits(model, tmp_path / "small.pth"))
    assert ckpt.config == config


def test_sizes_pinned_by_the_weights_override_the_config(tmp_path):
    config = sovits_tiny()
    hps = config.to_upstream()
    del hps["autocompress"]  # an upstream-style config: MRTE, style, flow, enc_q sizes fall back to v2's
    weights = upstream_sovits_state_dict(SynthesizerTrn(config), include_enc_q=True)
    path = _write(tmp_path / "small.pth", {"weight": weights, "config": HParams(**hps), "info": "x"}, b"PK")
    assert SoVITSConfig.from_upstream(hps, "v2") != config
    assert read_sovits(path).config == config


def test_malformed_config_is_one_line(tmp_path):
    model = SynthesizerTrn(sovits_tiny(), include_enc_q=False)
    hps = sovits_tiny().to_upstream()
    hps["model"]["upsample_rates"] = "fast"
    path = _write(tmp_path / "bad.pth", {"weight": upstream_sovits_state_dict(model), "config": HParams(**hps),
                                        "info": "x"}, b"PK")
    _one_line_error(load_sovits, path, match="config")
    gpt = Text2SemanticGPT(gpt_tiny())
    config = gpt_tiny().to_upstream()
    config["model"] = ["not", "a", "dict"]
    path = _write(tmp_path / "bad.ckpt", {"weight": upstream_gpt_state_dict(gpt), "config": config, "info": "x"}, b"PK")
    _one_line_error(load_gpt, path, match="config")


def test_gpt_round_trip_plain_and_pruned(tmp_path):
    phones = torch.randint(0, 732, (1, 6))
    bert = torch.randn(1, 1024, 6)
    prompt = torch.randint(0, 1024, (1, 4))
    for config in (gpt_tiny(), gpt_tiny().replace(layer_heads=(4, 2, 1), layer_ffn=(512, 100, 37))):
        model = _fp16_rounded(_randomize(Text2SemanticGPT(config), 2)).eval()
        path = save_gpt(model, tmp_path / "gpt.ckpt", epoch=7)
        ckpt = read_gpt(path)
        assert ckpt.config == config and ckpt.info.info == "GPT-e7"
        with torch.no_grad():
            assert torch.equal(ckpt.model.prefill_logits(phones, bert, prompt), model.prefill_logits(phones, bert, prompt))


def test_gpt_widths_come_from_the_weights_when_flagged(tmp_path):
    model = Text2SemanticGPT(gpt_tiny().replace(layer_heads=(4, 2, 1), layer_ffn=(512, 100, 37)))
    config = model.config.to_upstream()
    config["autocompress"] = {"ffn_dim": 512}  # says "ours" but not the per-layer widths
    torch.save({"weight": upstream_gpt_state_dict(model), "config": config, "info": "GPT-e1"}, tmp_path / "g.ckpt")
    assert read_gpt(tmp_path / "g.ckpt").config.layer_heads == (4, 2, 1)
    del config["autocompress"]  # a plain upstream config: the shapes must match it
    torch.save({"weight": upstream_gpt_state_dict(model), "config": config, "info": "GPT-e1"}, tmp_path / "u.ckpt")
    message = _one_line_error(load_gpt, tmp_path / "u.ckpt", match="shape")
    assert "model.h.layers.1.self_attn.in_proj_weight" in message and "[192, 128] in the file" in message and "expects [384, 128]" in message


# --------------------------------------------------------------------------- upstream compatibility


class _UpstreamHParamsStub:
    """What an upstream-compatible reader registers (fixture README): any class named utils.HParams."""


_UpstreamHParamsStub.__module__ = "utils"
_UpstreamHParamsStub.__qualname__ = "HParams"
_UpstreamHParamsStub.__name__ = "HParams"


def test_saved_sovits_reads_like_an_upstream_file(tmp_path):
    config = _tiny_variants()[2]  # v2Pro: also exercises the header tag
    path = save_sovits(SynthesizerTrn(config, include_enc_q=False), tmp_path / "pro.pth", epoch=2, step=9)
    assert _pickle_globals(path) == UPSTREAM_GLOBALS | {"utils.HParams"}
    data = b"PK" + path.read_bytes()[2:]
    with torch.serialization.safe_globals([_UpstreamHParamsStub]):
        ckpt = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    assert list(ckpt) == ["weight", "config", "info"] and isinstance(ckpt, collections.OrderedDict)
    assert ckpt["info"] == "2epoch_9iteration"
    hps = ckpt["config"]
    assert type(hps) is _UpstreamHParamsStub
    assert all(type(getattr(hps, k)) is _UpstreamHParamsStub for k in ("train", "data", "model"))
    assert hps.model.version == "v2Pro" and hps.version == "v2Pro"
    assert hps.model.upsample_rates == [10, 8, 2, 2, 2] and hps.data.filter_length == 2048
    assert hps.train.segment_size == 20480 and hps.pretrain is None
    assert all(v.dtype == torch.float16 for v in ckpt["weight"].values())
    assert "dec.ups.0.weight_g" in ckpt["weight"] and not any("enc_q" in k for k in ckpt["weight"])


@needs_fixtures
def test_saved_files_use_the_same_pickle_globals_as_upstream(tmp_path):
    assert _pickle_globals(CASE / "sovits.pth") == UPSTREAM_GLOBALS | {"utils.HParams"}
    assert _pickle_globals(CASE / "gpt.ckpt") == UPSTREAM_GLOBALS
    gpt = save_gpt(Text2SemanticGPT(gpt_tiny()), tmp_path / "g.ckpt")
    assert _pickle_globals(gpt) == UPSTREAM_GLOBALS
    plain = torch.load(gpt, weights_only=True)  # no allow-list needed, as upstream's
    assert isinstance(plain["weight"], collections.OrderedDict) and isinstance(plain["config"], dict)
    assert all(k.startswith("model.") and v.dtype == torch.float16 for k, v in plain["weight"].items())


# --------------------------------------------------------------------------- bad files


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "random.pth").write_bytes(bytes(range(7, 250)) * 20)
    (tmp_path / "text.pth").write_text("hello, this is not a model\n")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "folder.pth").mkdir()
    for loader in (load_sovits, load_gpt, inspect_checkpoint):
        _one_line_error(loader, tmp_path / "random.pth", match="not a PyTorch checkpoint")
        _one_line_error(loader, tmp_path / "text.pth", match="not a PyTorch checkpoint")
        _one_line_error(loader, tmp_path / "empty.pth", match="empty")
        _one_line_error(loader, tmp_path / "missing.pth", match="no such file")
        _one_line_error(loader, tmp_path / "folder.pth", match="not a file")


def test_truncated_and_corrupt_zip(tmp_path):
    good = save_gpt(Text2SemanticGPT(gpt_tiny()), tmp_path / "good.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(good[: len(good) // 2])
    (tmp_path / "pk.ckpt").write_bytes(b"PK" + bytes(range(256)) * 4)
    (tmp_path / "cut_pro.pth").write_bytes(b"05" + good[2 : len(good) - 100])  # a tagged file cut short
    for name in ("cut.ckpt", "pk.ckpt"):
        _one_line_error(load_gpt, tmp_path / name, match="truncated or damaged .*re-download")
    _one_line_error(load_sovits, tmp_path / "cut_pro.pth", match="truncated or damaged")
    damaged = bytearray(good)
    start = good.index(b"data.pkl") + 200  # inside the pickle: the archive's index still reads
    damaged[start : start + 64] = bytes(64)
    (tmp_path / "damaged.ckpt").write_bytes(bytes(damaged))
    _one_line_error(load_gpt, tmp_path / "damaged.ckpt", match="corrupt or truncated|not a valid")


def test_other_files_with_a_checkpoints_first_bytes_are_named(tmp_path):
    """A text file starting with two digits is no version-tagged checkpoint, and a zip archive
    (or one given a version tag) is no checkpoint unless torch's data.pkl is inside."""
    (tmp_path / "numbers.pth").write_text("05 12 7 1023 5\n")
    (tmp_path / "digits.ckpt").write_text("12345\n")
    for name in ("numbers.pth", "digits.ckpt"):
        message = _one_line_error(load_sovits, tmp_path / name, match="not a PyTorch checkpoint")
        assert "newer upstream" not in message
    with zipfile.ZipFile(tmp_path / "voice.zip", "w") as archive:
        archive.writestr("me/me_e8_s200.pth", b"x" * 100)
    (tmp_path / "tagged.pth").write_bytes(b"05" + (tmp_path / "voice.zip").read_bytes()[2:])
    for name in ("voice.zip", "tagged.pth"):
        for loader in (load_sovits, load_gpt, inspect_checkpoint):
            message = _one_line_error(loader, tmp_path / name, match=r"zip archive, but not a PyTorch checkpoint")
            assert "re-download" not in message


def test_files_without_a_config_are_named(tmp_path):
    gpt = torch.load(save_gpt(Text2SemanticGPT(gpt_tiny()), tmp_path / "g.ckpt"), weights_only=True)
    torch.save({k: v for k, v in gpt.items() if k != "config"}, tmp_path / "no_config.ckpt")
    message = _one_line_error(load_gpt, tmp_path / "no_config.ckpt", match="GPT file has no 'config' entry")
    assert "GPT_weights" in message
    torch.save({**gpt, "config": [1, 2]}, tmp_path / "list_config.ckpt")
    _one_line_error(load_gpt, tmp_path / "list_config.ckpt", match="'config' is a list, expected a dict")
    weights = upstream_sovits_state_dict(SynthesizerTrn(sovits_tiny()))
    _write(tmp_path / "no_config.pth", {"weight": weights, "info": "x"}, b"PK")
    message = _one_line_error(load_sovits, tmp_path / "no_config.pth", match="is missing")
    assert "no 'config' entry, so upstream's v2 sizes were assumed" in message


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"weight": {"model.x": torch.zeros(1)}, "config": Evil(), "info": "x"}, tmp_path / "evil.ckpt")
    for loader in (load_gpt, load_sovits):
        _one_line_error(loader, tmp_path / "evil.ckpt", match="refused to unpickle .*system")
    assert not marker.exists()


@pytest.mark.parametrize(
    "header, match", [(b"02", "v3 .*not supported yet"), (b"03", "LoRA .*not supported yet"), (b"04", "LoRA")]
)
def test_v3_v4_and_lora_headers(tmp_path, header, match):
    path = tmp_path / "new.pth"
    path.write_bytes(header + save_gpt(Text2SemanticGPT(gpt_tiny()), tmp_path / "x.ckpt").read_bytes()[2:])
    _one_line_error(load_sovits, path, match=match)


def test_v3_keys_and_lora_entries(tmp_path):
    hps = HParams(**sovits_tiny().to_upstream())
    weights = {"cfm.proj.weight": torch.zeros(2), "enc_p.proj.weight": torch.zeros(2)}
    _write(tmp_path / "v3.pth", {"weight": weights, "config": hps, "info": "x"}, b"PK")
    lora = {"weight": {"cfm.x.lora_A": torch.zeros(2)}, "config": hps, "info": "x", "lora_rank": 32}
    _write(tmp_path / "lora.pth", lora, b"PK")
    _one_line_error(load_sovits, tmp_path / "v3.pth", match="v3/v4 .*not supported yet")
    _one_line_error(load_sovits, tmp_path / "lora.pth", match="LoRA .*not supported yet")


def _tampered_sovits(tmp_path: Path, change) -> Path:  # noqa: ANN001
    model = SynthesizerTrn(sovits_tiny(), include_enc_q=False)
    weights = upstream_sovits_state_dict(model)
    change(weights)
    config = HParams(**sovits_tiny().to_upstream())
    return _write(tmp_path / "tampered.pth", {"weight": weights, "config": config, "info": "x"}, b"PK")


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path):
    path = _tampered_sovits(tmp_path, lambda w: w.pop("flow.flows.2.post.weight"))
    _one_line_error(load_sovits, path, match="'flow.flows.2.post.weight' is missing")
    path = _tampered_sovits(tmp_path, lambda w: w.__setitem__("dec.extra.weight", torch.zeros(3)))
    _one_line_error(load_sovits, path, match="unexpected key 'dec.extra.weight'")
    path = _tampered_sovits(tmp_path, lambda w: w.__setitem__("dec.ups.1.weight_v", torch.zeros(64, 16, 16)))
    message = _one_line_error(load_sovits, path, match="'dec.ups.1.weight_v' has shape")
    assert "[64, 16, 16] in the file" in message and "expects [64, 32, 16]" in message


def test_non_finite_weights_are_refused(tmp_path):
    path = _tampered_sovits(tmp_path, lambda w: w["dec.conv_pre.weight"].view(-1)[5].fill_(float("inf")))
    _one_line_error(load_sovits, path, match="'dec.conv_pre.weight' holds NaN or inf values")


def test_a_legacy_torch_file_loads_and_an_unknown_tag_is_named(tmp_path):
    model = _randomize(Text2SemanticGPT(gpt_tiny()), seed=3).eval()
    saved = save_gpt(model, tmp_path / "zip.ckpt")
    obj = torch.load(saved, weights_only=True)
    legacy = tmp_path / "legacy.ckpt"
    torch.save(obj, legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:2] == b"\x80\x02"
    loaded = load_gpt(legacy)
    for (name, a), b in zip(load_gpt(saved).state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    future = tmp_path / "future.pth"
    future.write_bytes(b"07" + saved.read_bytes()[2:])
    _one_line_error(load_sovits, future, match=r"unknown GPT-SoVITS version tag b'07'.*newer upstream")


def test_weights_in_a_wrapper_or_without_upstream_prefix_are_named(tmp_path):
    gpt_obj = torch.load(save_gpt(Text2SemanticGPT(gpt_tiny()), tmp_path / "g.ckpt"), weights_only=True)
    no_prefix = {**gpt_obj, "weight": {k.removeprefix("model."): v for k, v in gpt_obj["weight"].items()}}
    torch.save(no_prefix, tmp_path / "no_prefix.ckpt")
    _one_line_error(load_gpt, tmp_path / "no_prefix.ckpt", match="GPT keys without upstream's 'model.' prefix")
    model = SynthesizerTrn(sovits_tiny(), include_enc_q=False)
    weights = upstream_sovits_state_dict(model)
    hps = HParams(**sovits_tiny().to_upstream())
    wrapped = {"weight": {f"module.{k}": v for k, v in weights.items()}, "config": hps, "info": "x"}
    _write(tmp_path / "wrapped.pth", wrapped, b"PK")
    _one_line_error(load_sovits, tmp_path / "wrapped.pth", match="'module.' prefix")
    torch.save(dict(weights), tmp_path / "bare.pth")
    message = _one_line_error(inspect_checkpoint, tmp_path / "bare.pth", match="bare state dict")
    assert "SoVITS keys" in message


class _WindowsPathPickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickles a PosixPath as pathlib.WindowsPath, as a checkpoint written on Windows names it."""

    def save_global(self, obj, name=None):
        if obj is pathlib.PosixPath:
            self.write(pickle.GLOBAL + b"pathlib\nWindowsPath\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _lightning_checkpoint(model: Text2SemanticGPT, with_config: bool = True) -> dict:
    """What s1_train's Lightning trainer saves in logs/<exp>/logs_s1_<v>/ckpt/: fp32 ``model.`` weights,
    save_hyperparameters() of (config, output_dir, is_train), and the trainer's own state."""
    state = upstream_gpt_state_dict(model, half=False)
    ckpt = {
        "epoch": 14, "global_step": 300, "pytorch-lightning_version": "2.4.0", "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 15, "completed": 14}}}},
        "callbacks": {"my_model_ckpt{'monitor': 'top_3_acc', 'mode': 'max'}": {
            "monitor": "top_3_acc", "best_model_score": torch.tensor(0.5), "dirpath": "logs/me/logs_s1_v2/ckpt",
            "best_k_models": {}, "kth_value": torch.tensor(float("-inf"))}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0), "delta": torch.zeros(2)}},
                              "param_groups": [{"lr": 0.01, "betas": (0.9, 0.95), "params": [0]}]}],
        "lr_schedulers": [{"init_lr": 1e-05, "peak_lr": 0.01, "_last_lr": [0.01]}],
    }
    if with_config:
        ckpt["hparams_name"] = "kwargs"
        ckpt["hyper_parameters"] = {
            "config": model.config.to_upstream(), "output_dir": pathlib.Path("logs/me/logs_s1_v2"), "is_train": True,
        }
    return ckpt


def test_lightning_training_checkpoint_loads_with_its_config(tmp_path):
    """s1_train's own checkpoints pickle output_dir as a pathlib path: read as inert text, never refused."""
    model = _randomize(Text2SemanticGPT(gpt_tiny()), seed=4).eval()
    torch.save(_lightning_checkpoint(model), tmp_path / "epoch=14-step=300.ckpt")
    windows = types.SimpleNamespace(__name__="windows_pickle", Pickler=_WindowsPathPickler)
    torch.save(_lightning_checkpoint(model), tmp_path / "windows.ckpt", pickle_module=windows)
    assert b"WindowsPath" in (tmp_path / "windows.ckpt").read_bytes()
    for name in ("epoch=14-step=300.ckpt", "windows.ckpt"):
        ckpt = read_gpt(tmp_path / name)
        assert ckpt.info.info == "GPT-e15" and ckpt.config == model.config
        for (key, a), b in zip(model.state_dict().items(), ckpt.model.state_dict().values()):
            assert torch.equal(a, b), key
        assert inspect_checkpoint(tmp_path / name).kind == "gpt"
    _one_line_error(load_sovits, tmp_path / "windows.ckpt", match="GPT .*pass it as --gpt")
    torch.save(_lightning_checkpoint(model, with_config=False), tmp_path / "bare.ckpt")
    _one_line_error(load_gpt, tmp_path / "bare.ckpt", match="Lightning training checkpoint without its config")


def test_inspect_checks_a_gpt_file_against_its_config(tmp_path):
    """A config that says v1 (512 phone ids) over a v2 embedding (732 rows) is named, as loading names it."""
    obj = torch.load(save_gpt(Text2SemanticGPT(gpt_tiny()), tmp_path / "g.ckpt"), weights_only=True)
    obj["config"]["model"]["phoneme_vocab_size"] = 512
    torch.save(obj, tmp_path / "mismatch.ckpt")
    for fn in (inspect_checkpoint, load_gpt):
        _one_line_error(fn, tmp_path / "mismatch.ckpt", match="'model.ar_text_embedding.word_embeddings.weight' has shape")


def test_version_detection_rules():
    v2 = {"enc_p.text_embedding.weight": (732, 192), "dec.conv_pre.weight": (512, 192, 7)}
    assert detect_sovits_version(v2) == "v2"
    assert detect_sovits_version({**v2, "enc_p.text_embedding.weight": (322, 192)}) == "v1"
    pro = {**v2, "sv_emb.weight": (1024, 20480)}
    assert detect_sovits_version(pro) == "v2Pro"
    assert detect_sovits_version({**pro, "dec.conv_pre.weight": (768, 192, 7)}) == "v2ProPlus"
    assert detect_sovits_version(pro, header=b"06") == "v2ProPlus"  # a pruned ProPlus keeps its tag
    with pytest.raises(CheckpointError, match="not supported yet"):
        detect_sovits_version({**v2, "cfm.in.weight": (1,)})


# --------------------------------------------------------------------------- manifests


def _sovits_expectations(manifest: dict) -> tuple[dict, dict]:
    entries = {**manifest["params"], **manifest["buffers"]}
    training = set(manifest["training_only_keys"])
    user = {k: (tuple(s), d) for k, (s, d) in entries.items() if k not in training}
    enc_q = {k: (tuple(s), d) for k, (s, d) in entries.items() if k in training}
    return user, enc_q


def _described(state: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}


@needs_fixtures
@pytest.mark.parametrize("manifest_path", MANIFESTS, ids=lambda p: p.stem)
def test_state_dict_matches_upstream_manifest(manifest_path):
    manifest = json.loads(manifest_path.read_text())
    if manifest["kind"] == "gpt":
        config = GPTConfig.from_upstream(manifest["config"])
        with torch.device("meta"):
            model = Text2SemanticGPT(config)
        ours = _described(upstream_gpt_state_dict(model))
        expected = {k: (tuple(s), d) for k, (s, d) in {**manifest["params"], **manifest["buffers"]}.items()}
        assert ours == expected
        assert sum(p.numel() for p in model.parameters()) == manifest["param_count_total"]
        return
    version = manifest["tag"]
    config = SoVITSConfig.from_upstream(manifest["config"], version)
    shapes = {k: tuple(s) for k, (s, _) in {**manifest["params"], **manifest["buffers"]}.items()}
    assert detect_sovits_version(shapes, b"PK", manifest["config"]) == version
    assert _pin_sovits_sizes(config, shapes) == config  # upstream files pin nothing new
    with torch.device("meta"):
        model = SynthesizerTrn(config, include_enc_q=True)
    user, enc_q = _sovits_expectations(manifest)
    saved = _described(upstream_sovits_state_dict(model))
    assert saved == user
    assert len(saved) == manifest["n_entries_in_user_file"]
    full = _described(upstream_sovits_state_dict(model, include_enc_q=True))
    assert {k: v for k, v in full.items() if k not in saved} == enc_q
    assert sum(p.numel() for p in model.parameters()) == manifest["param_count_total"]


def _s2_experiment(tmp_path: Path, config: SoVITSConfig, step: int = 2333) -> tuple[SynthesizerTrn, Path]:
    """What s2_train leaves in logs/<exp>/: config.json, and G_/D_ resume checkpoints (fp32, with enc_q,
    the optimiser's state) in logs_s2_<ver>/."""
    model = _randomize(SynthesizerTrn(config, include_enc_q=True), seed=5).eval()
    exp = tmp_path / "logs" / "my voice"
    (exp / "logs_s2_v2").mkdir(parents=True)
    hps = config.to_upstream()
    hps.update(s2_ckpt_dir=str(exp), name="my voice", version=config.version)
    (exp / "config.json").write_text(json.dumps(hps, indent=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.8, 0.99), eps=1e-9)
    for p in model.parameters():
        p.grad = torch.ones_like(p) * 1e-3
    optimizer.step()
    state = to_upstream_keys(model.state_dict())
    torch.save({"model": state, "iteration": 12, "optimizer": optimizer.state_dict(), "learning_rate": 1e-4},
               exp / "logs_s2_v2" / f"G_{step}.pth")
    torch.save({"model": {"discriminators.0.convs.0.weight": torch.zeros(16, 1, 15)}, "iteration": 12,
                "optimizer": {}, "learning_rate": 1e-4}, exp / "logs_s2_v2" / f"D_{step}.pth")
    return model, exp


@pytest.mark.parametrize("config", _tiny_variants()[::2], ids=lambda c: c.version)
def test_sovits_resume_checkpoint_loads_with_the_experiments_config(tmp_path, config):
    model, exp = _s2_experiment(tmp_path, config)
    path = exp / "logs_s2_v2" / "G_2333.pth"
    ckpt = read_sovits(path)
    assert ckpt.version == config.version and ckpt.config == config and ckpt.has_enc_q
    assert ckpt.info.info == "12epoch_2333iteration" and checkpoint_step(path) == 2333
    for key, value in model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[key], value), key  # fp32: exactly the trained weights
    assert inspect_checkpoint(path).kind == "sovits"
    (exp / "config.json").rename(exp / "logs_s2_v2" / "config.json")  # beside the file is found too
    assert read_sovits(path).config == config


def test_sovits_resume_checkpoint_problems_are_named(tmp_path):
    _, exp = _s2_experiment(tmp_path, sovits_tiny())
    _one_line_error(load_sovits, exp / "logs_s2_v2" / "D_2333.pth", match="discriminator resume checkpoint")
    (exp / "config.json").write_text("{not json")
    _one_line_error(load_sovits, exp / "logs_s2_v2" / "G_2333.pth", match="config.json: cannot read")
    (exp / "config.json").unlink()
    message = _one_line_error(load_sovits, exp / "logs_s2_v2" / "G_2333.pth", match="carries no config")
    assert str(exp / "config.json") in message
    (exp / "config.json").write_text(json.dumps(sovits_tiny().replace(filter_channels=128).to_upstream()))
    _one_line_error(load_sovits, exp / "logs_s2_v2" / "G_2333.pth", match="weights do not match the config")


@pytest.mark.parametrize("version, folder", [("v1", "SoVITS_weights"), ("v2", "SoVITS_weights_v2"),
                                             ("v2ProPlus", "SoVITS_weights_v2ProPlus")])
def test_an_exported_config_names_upstreams_weights_folder(version, folder):
    assert sovits_tiny().replace(version=version).to_upstream()["save_weight_dir"] == folder
