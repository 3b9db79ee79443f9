"""Fake quantization: numerics per bit width, straight-through gradients, weight norm, stripping."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from autocompress.compress import (
    QuantConfig,
    add_fake_quant_,
    fake_quantize,
    fake_quantize_blocks,
    has_fake_quant,
    strip_fake_quant_,
)
from autocompress.compress.fake_quant import add_input_rounding_, fake_quantize_activation, layer_activations
from autocompress.exceptions import CompressionError

LAYERS = (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        weight_norm(nn.Conv1d(8, 32, 3, padding=1)),
        nn.LeakyReLU(0.1),
        weight_norm(nn.ConvTranspose1d(32, 16, 4, stride=2, padding=1)),
        nn.LeakyReLU(0.1),
        nn.Conv1d(16, 4, 1),
    ).eval()


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(64, 48)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, T, 48]
        return self.proj(x.transpose(1, 2))


def _rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _fresh(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = _net(seed)
    return nn.Sequential(net, nn.Flatten(1), nn.Unflatten(1, (64, -1)), _Head()).eval()


def test_output_error_grows_as_bits_shrink() -> None:
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        reference = _fresh()(x)
    errors = {}
    for precision in ("fp16", "int8", "int4", "int2"):
        model = add_fake_quant_(_fresh(), QuantConfig(weights=precision))
        with torch.no_grad():
            errors[precision] = _rel_error(model(x), reference)
    assert errors["fp16"] < 1e-3
    assert errors["int8"] < 0.02  # 8 bits: close to fp32
    assert errors["int2"] > 0.2  # 2 bits: clearly worse
    assert errors["fp16"] < errors["int8"] < errors["int4"] < errors["int2"]


def test_per_channel_grid_and_axis() -> None:
    w = torch.randn(6, 5, 3)
    q = fake_quantize(w, 4, axis=0)
    for c in range(6):  # each output channel on its own grid of 15 levels spanning its amax
        scale = w[c].abs().max() / 7
        steps = q[c] / scale
        assert torch.allclose(steps, steps.round(), atol=1e-4)
        assert float(q[c].abs().max()) == pytest.approx(float(w[c].abs().max()), rel=1e-6)
    # ConvTranspose1d keeps output channels on axis 1
    conv = nn.ConvTranspose1d(4, 6, 3)
    add_fake_quant_(conv, QuantConfig(weights="int4"))
    assert conv.parametrizations.weight[0].axis == 1


def test_low_bit_linear_weights_are_rounded_in_blocks_of_inputs() -> None:
    """As MatMulNBits stores them: one scale per 32 inputs of an output, the block's extreme kept."""
    torch.manual_seed(0)
    w = torch.randn(6, 70)  # 70 inputs: blocks of 32, 32 and 6
    for bits in (4, 2):
        q = fake_quantize_blocks(w, bits)
        low = -(2 ** (bits - 1))
        for o in range(6):
            for start in (0, 32, 64):
                blk, got = w[o, start : start + 32], q[o, start : start + 32]
                extreme = blk[blk.abs().argmax()]
                steps = got / (extreme / low)
                assert torch.allclose(steps, steps.round(), atol=1e-5)
                assert low <= steps.round().min() and steps.round().max() <= -low - 1
                assert float(got[blk.abs().argmax()]) == float(extreme)  # the extreme itself is exact
    lin = add_fake_quant_(nn.Linear(70, 6), QuantConfig(weights="int4"))
    assert torch.equal(lin.weight, fake_quantize_blocks(lin.parametrizations.weight.original, 4))
    conv = add_fake_quant_(nn.Conv1d(4, 6, 3), QuantConfig(weights="int4"))  # convolutions: per channel
    assert torch.equal(conv.weight, fake_quantize(conv.parametrizations.weight.original, 4, axis=0))
    wide = add_fake_quant_(nn.Linear(70, 6), QuantConfig(weights="int8"))  # int8: per channel, as QDQ ships it
    assert torch.equal(wide.weight, fake_quantize(wide.parametrizations.weight.original, 8, axis=0))
    g = torch.randn(3, 40, requires_grad=True)
    fake_quantize_blocks(g, 4).sum().backward()
    assert torch.equal(g.grad, torch.ones_like(g))  # straight through


def test_straight_through_gradients() -> None:
    model = add_fake_quant_(_fresh(), QuantConfig(weights="int4"))
    model.train()
    x = torch.randn(2, 8, 32)
    model(x).pow(2).mean().backward()
    conv = model[0][0]
    grads = [conv.parametrizations.weight.original0.grad, conv.parametrizations.weight.original1.grad]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)
    w = torch.randn(5, 7, requires_grad=True)
    fake_quantize(w, 3).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # identity gradient through round/clamp


def test_strip_leaves_plain_weights_equal_to_quantized_values() -> None:
    model = add_fake_quant_(_fresh(), QuantConfig(weights="int4", op_weights={"linear": "fp16"}))
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        simulated = model(x)
        quantized = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, LAYERS)}
    strip_fake_quant_(model)
    for name, module in model.named_modules():
        if name in quantized:
            assert not parametrize.is_parametrized(module, "weight"), name  # weight norm folded too
            assert torch.equal(module.weight, quantized[name]), name
            assert module.weight.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(model(x), simulated)
    # every weight is on its per-channel int4 grid
    w = model[0][0].weight
    scale = w.abs().amax(dim=(1, 2), keepdim=True) / 7
    assert torch.allclose(w / scale, (w / scale).round(), atol=1e-4)


def test_activation_fake_quant_and_double_registration() -> None:
    model = _fresh()
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        reference = model(x)
    add_fake_quant_(model, QuantConfig(activations="int8"))  # fp32 weights ship an fp32 graph: nothing rounds
    with torch.no_grad():
        assert torch.equal(model(x), reference)
    strip_fake_quant_(model)
    add_input_rounding_(model, "int8")
    with torch.no_grad():
        err = _rel_error(model(x), reference)
    assert 0 < err < 0.05
    strip_fake_quant_(model)
    with torch.no_grad():
        assert torch.equal(model(x), reference)
    add_fake_quant_(model, QuantConfig(weights="int8"))
    assert has_fake_quant(model[0][0])
    with pytest.raises(CompressionError, match="already has fake quantization"):
        add_fake_quant_(model, QuantConfig(weights="int8"))


def test_layers_with_int8_weights_take_int8_inputs_as_they_ship():
    """int8 weights with fp16 activations were scored as W8A16 while the export ships static
    W8A8 QDQ and the latency projection counts int8 math: the scored student was not the shipped one."""
    torch.manual_seed(0)
    x = torch.randn(3, 16)
    for weights, act, expected in (("int8", "fp16", "int8"), ("int6", "fp32", "int8"), ("int4", "fp32", "fp32"),
                                   ("fp16", "fp16", "fp16"), ("int8", "int8", "int8")):
        layer = nn.Linear(16, 4)
        model = add_fake_quant_(nn.Sequential(layer), QuantConfig(weights=weights, activations=act))
        with torch.no_grad():
            want = nn.functional.linear(fake_quantize_activation(x, expected), layer.weight, layer.bias)
            assert torch.equal(model(x), want), (weights, act)
    assert layer_activations("fp16", "int8") == "int8" and layer_activations("fp32", "int4") == "fp32"


def test_calibrated_int8_inputs_round_to_a_static_range_as_the_export_ships_them():
    """Scoring rounded int8 inputs with each call's own largest magnitude, finer than the shipped
    static-QDQ graph, whose range is fixed by calibration: small inputs lost no precision, large ones never clipped."""
    from autocompress.compress.fake_quant import calibrate_activations_

    torch.manual_seed(0)
    layer = nn.Linear(16, 4)
    model = add_fake_quant_(nn.Sequential(layer), QuantConfig(weights="int8", activations="fp32"))
    calib = [2.0 * torch.rand(5, 16) - 1.0, torch.full((1, 16), 2.0)]  # largest magnitude seen: 2.0
    with torch.no_grad():
        during = []
        n = calibrate_activations_(model, lambda: during.extend(model(x) for x in calib))
        assert n == 1
        plain = nn.functional.linear(calib[0], layer.weight, layer.bias)
        assert torch.equal(during[0], plain)  # calibration runs the float inputs
        for x in (0.01 * torch.randn(3, 16), 4.0 * torch.randn(3, 16)):
            static = nn.functional.linear(fake_quantize_activation(x, "int8", amax=2.0), layer.weight, layer.bias)
            dynamic = nn.functional.linear(fake_quantize_activation(x, "int8"), layer.weight, layer.bias)
            assert torch.equal(model(x), static) and not torch.equal(static, dynamic)
        big = fake_quantize_activation(torch.tensor([5.0, -3.0, 1.0]), "int8", amax=2.0)
        assert big.tolist()[:2] == [2.0, pytest.approx(-2.0 * 128 / 127)]  # clipped: 127 steps up, 128 down


@pytest.mark.parametrize("amax", [0.37, 2.0, 1e3])
def test_static_int8_inputs_saturate_as_onnxruntime_quantize_linear(amax: float) -> None:
    """The scored rounding of a static s8 input is the shipped graph's: QuantizeLinear then
    DequantizeLinear with scale amax / 127 and zero point 0, run by onnxruntime; beyond the
    range that saturates at -128 steps below and 127 above (the scoring clipped at -127)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    scale = np.array(amax / 127, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(np.array(0, dtype=np.int8), "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx.checker.check_model(model)
    x = torch.linspace(-1.5 * amax, 1.5 * amax, 3001)
    (shipped,) = session.run(None, {"x": x.numpy()})
    assert shipped.min() < -amax  # the case that differs: -128 steps
    scored = fake_quantize_activation(x, "int8", amax=amax)
    np.testing.assert_allclose(scored.numpy(), shipped, rtol=0, atol=1e-6 * amax)


def test_calibration_skips_the_run_without_integer_inputs_and_leaves_unseen_layers_dynamic():
    from autocompress.compress.fake_quant import calibrate_activations_

    half = add_fake_quant_(nn.Sequential(nn.Linear(8, 8)), QuantConfig(weights="fp16", activations="fp16"))
    ran = []
    assert calibrate_activations_(half, lambda: ran.append(1)) == 0 and not ran
    used, unused = nn.Linear(8, 8), nn.Linear(8, 8)
    model = add_fake_quant_(nn.ModuleList([used, unused]), QuantConfig(weights="int8"))
    with torch.no_grad():
        assert calibrate_activations_(model, lambda: used(torch.ones(1, 8))) == 1
        x = 3.0 * torch.randn(2, 8)
        want = nn.functional.linear(fake_quantize_activation(x, "int8"), unused.weight, unused.bias)
        assert torch.equal(unused(x), want)  # never called while calibrating: still per call


def test_a_static_range_beyond_fp16_keeps_an_fp16_input_finite():
    x = torch.tensor([1e4, -3e4, 0.5], dtype=torch.float16)
    q = fake_quantize_activation(x, "int8", amax=1e5)  # wider than fp16's 65504
    assert q.dtype == torch.float16 and torch.isfinite(q).all()
    step = 1e5 / 127
    assert abs(float(q[0]) - round(1e4 / step) * step) < 16 and float(q[2]) == 0.0


def test_uint8_inputs_round_over_their_calibrated_minimum_and_maximum():
    """CPU-target bundles ship asymmetric u8 activations: 256 levels over [min, max] (holding 0)."""
    from autocompress.compress.fake_quant import calibrate_activations_, fake_quantize_activation_u8

    x = torch.tensor([-1.0, 0.0, 0.5, 3.0, 5.0])
    q = fake_quantize_activation_u8(x, -1.0, 3.0)
    step = 4.0 / 255
    assert float(q[1]) == 0.0 and abs(float(q[0]) + 1.0) < step and abs(float(q[2]) - 0.5) <= step / 2 + 1e-7
    assert abs(float(q[4]) - 3.0) < step  # clipped to the range
    assert len(set(fake_quantize_activation_u8(torch.linspace(-1, 3, 2000), -1.0, 3.0).tolist())) == 256
    positive = fake_quantize_activation_u8(torch.tensor([0.2, 2.0]), 0.5, 2.0)  # the range widens to hold 0
    assert abs(float(positive[0]) - 0.2) <= 2.0 / 255

    layer = nn.Linear(4, 2)
    model = add_fake_quant_(nn.Sequential(layer), QuantConfig(weights="int8"))
    with torch.no_grad():
        assert calibrate_activations_(model, lambda: model(torch.tensor([[0.0, 1.0, 2.0, 3.0]])), symmetric=False) == 1
        x = torch.tensor([[0.5, 1.5, 2.5, 9.0]])
        want = nn.functional.linear(fake_quantize_activation_u8(x, 0.0, 3.0), layer.weight, layer.bias)
        assert torch.equal(model(x), want)


def test_a_packed_attention_projection_takes_int8_inputs_as_its_exported_matmul_does():
    """The exported int8 GPT rounds the fused q/k/v projection's input; the scored student must too."""
    from autocompress.compress.fake_quant import calibrate_activations_
    from autocompress.models.gpt_sovits.gpt import SelfAttention

    torch.manual_seed(0)
    attn = SelfAttention(16, 2, 8, 0.0).eval()
    add_fake_quant_(attn, QuantConfig(weights="int8", activations="fp32"))
    x = torch.randn(1, 5, 16)
    w, b = attn.in_proj_weight, attn.in_proj_bias  # the int8-rounded weight
    with torch.no_grad():
        calibrate_activations_(attn, lambda: attn.project(x))
        amax = float(x.abs().amax())
        want = nn.functional.linear(fake_quantize_activation(x, "int8", amax=amax), w, b)
        assert torch.equal(torch.cat(attn.project(x), -1), want)
        assert not torch.equal(want, nn.functional.linear(x, w, b))
    strip_fake_quant_(attn)
    with torch.no_grad():  # stripped: a float input again, and the same rounded weight
        assert torch.equal(torch.cat(attn.project(x), -1), nn.functional.linear(x, w, b))
