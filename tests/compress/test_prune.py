"""Structured pruning: zeroing exactly the removed channels in the teacher gives the pruned
model's output; parameter counts drop by the amount computed from the shapes; limits hold."""

from __future__ import annotations

import functools

import pytest
import torch
from compress_helpers import gpt_batch, randomize_, run_group, sovits_inputs
from torch import nn

from autocompress.compress import (
    CompressionPlan,
    GroupPlan,
    PruneConfig,
    StudentConfig,
    compress,
    prunable_units,
    prune_state,
)
from autocompress.compress.apply import importance_context_factory, validate_plan
from autocompress.compress._build import build_model
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.config import ENC_P_ENCODERS
from autocompress.models.gpt_sovits.sovits import remove_weight_norm_

GROUPS = ("gpt", "enc_p", "flow", "dec", "ref_enc")


def _removed(size: int, kept: torch.Tensor) -> list[int]:
    return sorted(set(range(size)) - set(kept.tolist()))


def _plain_copy(model: nn.Module) -> nn.Module:
    """A fresh copy of ``model`` with weight norm folded into plain weights."""
    copy = build_model(model.config, model.state_dict())
    if hasattr(copy, "flow"):
        remove_weight_norm_(copy)
    return copy


@torch.no_grad()
def _zero_removed_(model: nn.Module, group: str, kept: dict[str, torch.Tensor]) -> None:
    """Zero, by hand, the channels pruning removed: their producers (or all their consumers)."""
    c = model.config
    if group == "gpt":
        for name, keep in kept.items():
            _, index, kind = name.split(".")
            i = int(index)
            layer = model.h.layers[i]
            if kind == "heads":  # a head whose output columns are zero contributes nothing
                hd = c.head_dim
                for h in _removed(c.heads_of(i), keep):
                    layer.self_attn.out_proj.weight[:, h * hd : (h + 1) * hd] = 0
            else:
                layer.linear2.weight[:, _removed(c.ffn_of(i), keep)] = 0
    elif group == "enc_p":
        hd = c.hidden_channels // c.n_heads
        for name, keep in kept.items():
            enc, index, kind = name.split(".")
            i = int(index)
            encoder = getattr(model.enc_p, enc)
            if kind == "heads":  # the shared emb_rel_v term makes a head's output non-zero: zero conv_o
                for h in _removed(c.enc_heads_of(enc, i), keep):
                    encoder.attn_layers[i].conv_o.weight[:, h * hd : (h + 1) * hd] = 0
            else:
                encoder.ffn_layers[i].conv_2.weight[:, _removed(c.enc_filter_of(enc, i), keep)] = 0
    elif group == "flow":
        for name, keep in kept.items():
            k = int(name.split(".")[1])
            h = c.flow_hidden_channels[k]
            gone = _removed(h, keep)
            pairs = gone + [h + j for j in gone]
            coupling = model.flow.flows[2 * k]
            coupling.pre.weight[gone] = 0
            coupling.pre.bias[gone] = 0
            wn = coupling.enc
            for i in range(c.flow_wn_layers):
                wn.in_layers[i].weight[pairs] = 0
                wn.in_layers[i].bias[pairs] = 0
                rows = gone if i == c.flow_wn_layers - 1 else pairs
                wn.res_skip_layers[i].weight[rows] = 0
                wn.res_skip_layers[i].bias[rows] = 0
                wn.cond_layer.weight[[2 * h * i + j for j in pairs]] = 0
                wn.cond_layer.bias[[2 * h * i + j for j in pairs]] = 0
    elif group == "dec":
        dec = model.dec
        widths = c.decoder_channels
        n_kernels = len(c.resblock_kernel_sizes)
        for name, keep in kept.items():
            if name == "conv_pre":
                gone = _removed(widths[0], keep)
                for conv in (dec.conv_pre, dec.cond):
                    conv.weight[gone] = 0
                    conv.bias[gone] = 0
                continue
            i = int(name.split(".")[1])
            gone = _removed(widths[i + 1], keep)
            dec.ups[i].weight[:, gone] = 0  # ConvTranspose1d: output channels on axis 1
            dec.ups[i].bias[gone] = 0
            for block in dec.resblocks[i * n_kernels : (i + 1) * n_kernels]:
                for conv in [*block.convs1, *block.convs2]:
                    conv.weight[gone] = 0
                    conv.bias[gone] = 0
    elif group == "ref_enc":
        r = model.ref_enc
        h = c.style_hidden
        gone = {name: _removed(h, keep) for name, keep in kept.items()}
        r.spectral[0].fc.weight[gone["spectral"]] = 0
        r.spectral[0].fc.bias[gone["spectral"]] = 0
        for layer in (r.spectral[3].fc, r.slf_attn.fc):
            layer.weight[gone["stream"]] = 0
            layer.bias[gone["stream"]] = 0
        for t in r.temporal:
            t.conv1.conv.weight[gone["stream"]] = 0
            t.conv1.conv.bias[gone["stream"]] = 0
        for w in (r.slf_attn.w_qs, r.slf_attn.w_ks, r.slf_attn.w_vs):
            w.weight[gone["attn"]] = 0
            w.bias[gone["attn"]] = 0


def _model_for(group: str, tiny_gpt, tiny_sovits):  # noqa: ANN001, ANN202
    return tiny_gpt if group == "gpt" else tiny_sovits


def _assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    err = float((a - b).abs().max())
    assert err <= 1e-5 * max(1.0, float(b.abs().max())), f"max abs diff {err}"


CASES = [(g, "l1") for g in GROUPS] + [(g, "activation") for g in ("gpt", "flow", "ref_enc")]


@pytest.mark.parametrize(("group", "importance"), CASES)
def test_zeroing_removed_channels_matches_pruned_model(  # noqa: ANN201
    group, importance, tiny_gpt, tiny_sovits  # noqa: ANN001
):
    teacher = _model_for(group, tiny_gpt, tiny_sovits)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    calibration = None
    if importance == "activation":
        calibration = {group: [functools.partial(_calibrate, group, teacher.config, s) for s in range(2)]}
    result = prune_state(
        teacher.config, teacher.state_dict(), group, PruneConfig(0.3, importance=importance),
        importance_context_factory(group, calibration),
    )  # fmt: skip
    assert result.kept_channels, "nothing was pruned"
    pruned = build_model(result.config, result.state)
    reference = _plain_copy(teacher)
    _zero_removed_(reference, group, result.kept_channels)
    _assert_same(run_group(pruned, group), run_group(reference, group))
    # the pruned model is smaller, and the teacher did not change
    assert result.params_after < result.params_before
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


def _calibrate(group: str, config, seed: int, module: nn.Module) -> torch.Tensor:  # noqa: ANN001
    """One calibration batch: run the group's module on fixed inputs."""
    if group == "gpt":
        logits, _ = module.forward_train(**gpt_batch(config, seed))
        return logits
    x = sovits_inputs(config, seed)
    if group == "enc_p":
        return module(x["ssl"], x["lengths"], x["text"], x["text_lengths"], x["ge"])[1]
    if group == "flow":
        return module(x["z"], x["mask"], g=x["ge"], reverse=True)
    if group == "dec":
        return module(x["z"], g=x["ge"])
    return module(x["spec"], x["spec_mask"])


def test_pruning_heads_and_ffn_per_layer_gpt(tiny_gpt) -> None:  # noqa: ANN001
    prune = PruneConfig(layers={"layers.0.heads": 0.25, "layers.2.ffn": 0.4, "layers.1.heads": 0.25})
    result = prune_state(tiny_gpt.config, tiny_gpt.state_dict(), "gpt", prune)
    c = tiny_gpt.config
    assert result.config.layer_heads == (3, 3, 4)
    assert result.config.layer_ffn == (512, 512, 512 - int(512 * 0.4))
    # computed parameter drop: a head is hd rows of q, k, v (+ biases) and hd out_proj columns
    d, hd = c.hidden_dim, c.head_dim
    per_head = 3 * hd * (d + 1) + hd * d
    per_ffn_unit = (d + 1) + d
    expected = 2 * per_head + int(512 * 0.4) * per_ffn_unit
    assert result.params_before - result.params_after == expected
    pruned = build_model(result.config, result.state)
    reference = _plain_copy(tiny_gpt)
    _zero_removed_(reference, "gpt", result.kept_channels)
    _assert_same(run_group(pruned, "gpt"), run_group(reference, "gpt"))


def test_enc_p_heads_prune_on_a_four_head_encoder() -> None:
    from autocompress.models.gpt_sovits.config import sovits_tiny
    from autocompress.models.gpt_sovits.sovits import SynthesizerTrn

    teacher = randomize_(SynthesizerTrn(sovits_tiny().replace(n_heads=4), include_enc_q=False), seed=5)
    units = prunable_units(teacher.config, "enc_p")
    assert "encoder_text.1.heads" in units and "encoder2.0.ffn" in units
    ratios = {"encoder_text.1.heads": 0.25, "encoder_ssl.0.heads": 0.25, "encoder2.0.ffn": 0.4}
    prune = PruneConfig(layers=ratios)
    result = prune_state(teacher.config, teacher.state_dict(), "enc_p", prune)
    assert result.config.enc_heads_of("encoder_text", 1) == 3
    assert result.config.enc_heads_of("encoder_text", 0) == 4
    pruned = build_model(result.config, result.state)
    reference = _plain_copy(teacher)
    _zero_removed_(reference, "enc_p", result.kept_channels)
    _assert_same(run_group(pruned, "enc_p"), run_group(reference, "enc_p"))
    assert set(ENC_P_ENCODERS) == {"encoder_ssl", "encoder_text", "encoder2"}


def test_decoder_parameter_count_drops_by_computed_amount(tiny_sovits) -> None:  # noqa: ANN001
    c = tiny_sovits.config
    prune = PruneConfig(layers={"ups.0": 0.25})  # 64 -> 48 channels after the first upsampler
    result = prune_state(c, tiny_sovits.state_dict(), "dec", prune)
    assert result.config.decoder_channels[1] == 48
    removed = 16
    k0 = c.upsample_kernel_sizes[0]
    # ups.0: weight [128, 64, k] (+ g per input channel: unchanged) and bias [64]
    expected = removed * (128 * k0 + 1)
    # ups.1 consumes stage 1: weight [64, 32, k1] and its g [64, 1, 1]
    expected += removed * (32 * c.upsample_kernel_sizes[1] + 1)
    # the stage's resblocks: every conv [64, 64, k] with g [64,1,1] and bias [64]
    for k, dil in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes):
        per_conv = 64 * 64 * k - 48 * 48 * k + 2 * removed
        expected += 2 * len(dil) * per_conv
    assert result.params_before - result.params_after == expected


def test_flow_depth_keeps_first_couplings(tiny_sovits) -> None:  # noqa: ANN001
    assert tiny_sovits.config.n_flows == 4
    result = prune_state(tiny_sovits.config, tiny_sovits.state_dict(), "flow", PruneConfig(depth_ratio=0.5))
    assert result.config.n_flows == 2 and result.kept_layers == [[0, 1]]
    pruned = build_model(result.config, result.state)
    # dropping the last two couplings (and their Flips, which cancel) equals zeroing them
    reference = _plain_copy(tiny_sovits)
    with torch.no_grad():
        for k in (4, 6):
            reference.flow.flows[k].post.weight.zero_()
            reference.flow.flows[k].post.bias.zero_()
    x = sovits_inputs(tiny_sovits.config)
    with torch.no_grad():
        got = pruned.flow(x["z"], x["mask"], g=x["ge"], reverse=True)
        want = reference.flow(x["z"], x["mask"], g=x["ge"], reverse=True)
    _assert_same(got, want)


def test_flow_couplings_go_in_pairs_so_the_latent_keeps_its_channel_order(tiny_sovits) -> None:  # noqa: ANN001
    """One coupling of four dropped would leave an odd number of Flips: the latent reversed."""
    sd = tiny_sovits.state_dict()
    for ratio, n_flows in [(0.25, 4), (0.5, 2), (0.6, 2)]:  # 0.25 of 4 is one coupling: none go
        result = prune_state(tiny_sovits.config, sd, "flow", PruneConfig(depth_ratio=ratio))
        assert result.config.n_flows == n_flows, ratio
    for depth_mult, n_flows in [(0.75, 4), (0.5, 2), (0.25, 2)]:
        student = compress(tiny_sovits, CompressionPlan({"flow": GroupPlan(student=StudentConfig(depth_mult=depth_mult))}))
        assert student.config.n_flows == n_flows, depth_mult


def test_gpt_depth_drops_whole_layers(tiny_gpt) -> None:  # noqa: ANN001
    result = prune_state(tiny_gpt.config, tiny_gpt.state_dict(), "gpt", PruneConfig(depth_ratio=0.34))
    (kept,) = result.kept_layers
    assert result.config.n_layer == 2 and len(kept) == 2
    pruned = build_model(result.config, result.state)
    reference = build_model(tiny_gpt.config, tiny_gpt.state_dict())
    reference.h.layers = nn.ModuleList(reference.h.layers[i] for i in kept)
    _assert_same(run_group(pruned, "gpt"), run_group(reference, "gpt"))


def test_unit_ratios_follow_their_layers_through_depth_pruning(tiny_gpt) -> None:  # noqa: ANN001
    teacher = build_model(tiny_gpt.config, tiny_gpt.state_dict())
    with torch.no_grad():  # layer 0 writes least into the residual stream: depth pruning drops it
        teacher.h.layers[0].linear2.weight.mul_(0.01)
        teacher.h.layers[0].self_attn.out_proj.weight.mul_(0.01)
    ratios = {"layers.0.ffn": 0.2, "layers.1.ffn": 0.4, "layers.2.heads": 0.25}
    prune = PruneConfig(layers=ratios, depth_ratio=0.34)
    result = prune_state(teacher.config, teacher.state_dict(), "gpt", prune)
    assert result.kept_layers == [[1, 2]]  # teacher layers 1 and 2 are now layers 0 and 1
    assert result.config.layer_ffn == (512 - int(512 * 0.4), 512)
    assert result.config.layer_heads == (4, 3)


# --------------------------------------------------------------------------- limits


def test_validator_rejects_45_percent_in_one_layer() -> None:
    with pytest.raises(ConfigError, match=r"layers\['ups.1'\] = 0.45 removes more than 40%"):
        PruneConfig(layers={"ups.1": 0.45})
    with pytest.raises(ConfigError, match="ratio = 0.45"):
        PruneConfig(ratio=0.45)


def test_validator_rejects_70_percent_in_total(tiny_gpt) -> None:  # noqa: ANN001
    # half the layers dropped, ~40 % of what is left (heads round down): 68 % of the channels
    prune = PruneConfig(ratio=0.4, depth_ratio=0.5)
    big = tiny_gpt.config.replace(n_layer=4)
    teacher = randomize_(type(tiny_gpt)(big), seed=3)
    with pytest.raises(ConfigError, match=r"removes 6[5-9]% of the module's channels.*at most 60%"):
        prune_state(big, teacher.state_dict(), "gpt", prune)
    # 40 % of the width alone is fine
    width_only = prune_state(big, teacher.state_dict(), "gpt", PruneConfig(ratio=0.4))
    assert width_only.removed_channel_fraction <= 0.4


def test_validator_rejects_fewer_than_16_channels(tiny_sovits) -> None:  # noqa: ANN001
    # stage ups.2 has 16 channels in the tiny decoder: any explicit pruning goes below 16
    message = r"ups.2 at ratio 0.25 keeps 12 of 16 channels; at least 16 must remain"
    with pytest.raises(ConfigError, match=message):
        prune_state(tiny_sovits.config, tiny_sovits.state_dict(), "dec", PruneConfig(layers={"ups.2": 0.25}))
    # a module-level ratio stops at 16 instead, and leaves narrower stages alone
    result = prune_state(tiny_sovits.config, tiny_sovits.state_dict(), "dec", PruneConfig(ratio=0.4))
    widths = result.config.decoder_channels
    assert widths[3:] == (16, 8, 4) and widths[2] == 20


def test_unknown_unit_and_depth_on_a_group_without_layers(tiny_sovits) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=r"unknown units \['ups.9'\]"):
        prune_state(tiny_sovits.config, tiny_sovits.state_dict(), "dec", PruneConfig(layers={"ups.9": 0.1}))
    with pytest.raises(ConfigError, match="depth pruning is not supported"):
        prune_state(tiny_sovits.config, tiny_sovits.state_dict(), "dec", PruneConfig(depth_ratio=0.2))


def test_taylor_importance_needs_calibration(tiny_sovits) -> None:  # noqa: ANN001
    from autocompress.exceptions import CompressionError

    plan = CompressionPlan({"dec": GroupPlan(prune=PruneConfig(0.2, importance="taylor"))})
    with pytest.raises(CompressionError, match="needs calibration batches"):
        compress(tiny_sovits, plan)


@pytest.mark.parametrize("group", ["flow", "dec"])
def test_missing_calibration_names_the_group_that_lacks_it(tiny_sovits, group: str) -> None:  # noqa: ANN001
    from autocompress.exceptions import CompressionError

    has_data = {"ref_enc": [lambda m: m(torch.ones(1, tiny_sovits.config.ref_bins, 4), torch.ones(1, 1, 4))]}
    pruned = GroupPlan(prune=PruneConfig(0.2, importance="activation"))
    distilled = GroupPlan(student=StudentConfig(width_mult=0.5), prune=PruneConfig(importance="taylor"))
    for group_plan in (pruned, distilled):
        with pytest.raises(CompressionError, match=rf"^{group}: importance '\w+' needs calibration batches"):
            compress(tiny_sovits, CompressionPlan({group: group_plan}), has_data)


def test_taylor_importance_ranks_by_data(tiny_sovits) -> None:  # noqa: ANN001
    x = sovits_inputs(tiny_sovits.config)
    factory = importance_context_factory("dec", {"dec": [lambda dec: dec(x["z"], g=x["ge"])]})
    state = tiny_sovits.state_dict()
    taylor = prune_state(tiny_sovits.config, state, "dec", PruneConfig(0.2, importance="taylor"), factory)
    l1 = prune_state(tiny_sovits.config, state, "dec", PruneConfig(0.2))
    assert taylor.config == l1.config  # same shapes ...
    kept, kept_l1 = taylor.kept_channels, l1.kept_channels
    assert any(not torch.equal(kept[k], kept_l1[k]) for k in kept_l1)  # ... other channels
    pruned = build_model(taylor.config, taylor.state)
    reference = _plain_copy(tiny_sovits)
    _zero_removed_(reference, "dec", taylor.kept_channels)
    _assert_same(run_group(pruned, "dec"), run_group(reference, "dec"))


def test_unit_ratios_name_the_teachers_layers_after_a_students_depth(tiny_gpt) -> None:  # noqa: ANN001
    """A student of 2 of 3 layers drops the least important one: ratios still follow their layers."""
    teacher = build_model(tiny_gpt.config, tiny_gpt.state_dict())
    with torch.no_grad():  # layer 0 writes least into the residual stream: the student drops it
        teacher.h.layers[0].linear2.weight.mul_(0.01)
        teacher.h.layers[0].self_attn.out_proj.weight.mul_(0.01)
    plan = CompressionPlan({"gpt": GroupPlan(
        student=StudentConfig(depth_mult=0.67),
        prune=PruneConfig(layers={"layers.0.ffn": 0.2, "layers.1.ffn": 0.4, "layers.2.heads": 0.25}),
    )})  # fmt: skip
    student = compress(teacher, plan)
    assert student.config.n_layer == 2
    assert student.config.layer_ffn == (512 - int(512 * 0.4), 512)  # teacher layer 1 is the student's 0
    assert student.config.layer_heads == (4, 3)
    validate_plan(teacher, plan)  # the plan check reads the same names
