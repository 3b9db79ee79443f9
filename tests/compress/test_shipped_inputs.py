"""A layer's input is scored at the precision its exported graph runs it at: int8 only in the
int8 (W8A8 static QDQ) part of a group, fp16 in an fp16 graph, else fp32, whatever float the
plan's activations name."""

from __future__ import annotations

import pytest
import torch
from compress_helpers import LinearThenConv
from torch import nn

from autocompress.compress import QuantConfig, add_fake_quant_, strip_fake_quant_
from autocompress.compress.fake_quant import (
    add_input_rounding_,
    calibrate_activations_,
    fake_quantize_activation,
    layer_activations,
    static_activation_ranges,
)


@pytest.mark.parametrize(
    ("config", "linear", "conv"),
    [
        # int8 activations: only the int8 part of a graph takes int8 inputs
        (QuantConfig("int4", "int8"), "fp32", "fp32"),  # weight-only MatMulNBits / DequantizeLinear: float inputs
        (QuantConfig("int3", "int8"), "fp32", "fp32"),
        (QuantConfig("fp16", "int8"), "fp16", "fp16"),  # an all-fp16 graph
        (QuantConfig("bf16", "int8"), "fp16", "fp16"),  # stored as fp16
        (QuantConfig("fp32", "int8"), "fp32", "fp32"),
        (QuantConfig("int8", "int8"), "int8", "int8"),
        (QuantConfig("int6", "fp32"), "int8", "int8"),
        (QuantConfig("int4", "int8", {"conv": "int8"}), "fp32", "int8"),  # the int8 part of an int4 graph
        (QuantConfig("int8", "int8", {"conv": "fp16"}), "int8", "fp32"),  # kept at fp32 in the int8 graph
        (QuantConfig("int8", "fp32", {"linear": "int4"}), "int8", "int8"),  # stored as int8 with its group
        (QuantConfig("fp16", "fp32", {"linear": "int8"}), "fp16", "fp16"),  # stored as fp16 with its group
        # float activations a graph does not run are not scored: the graph's float is
        (QuantConfig("fp32", "fp16", {"conv": "int8"}), "fp32", "fp32"),  # stored fp32: an fp32 graph
        # an integer group with fp16 activations runs its float parts in fp16 (a GPU target's graphs)
        (QuantConfig("int4", "fp16"), "fp16", "fp16"),  # weight-only, reading the graph's fp16 tensors
        (QuantConfig("int4", "bf16", {"conv": "int8"}), "fp16", "int8"),
        (QuantConfig("int8", "fp16", {"conv": "bf16"}), "int8", "fp16"),  # kept at fp32: Cast up from fp16
        (QuantConfig("fp32", "bf16"), "fp32", "fp32"),
        (QuantConfig("fp16", "fp16"), "fp16", "fp16"),
        (QuantConfig("fp16", "bf16"), "fp16", "fp16"),  # the fp16 graph runs fp16, not bf16
        (QuantConfig("bf16", "bf16"), "fp16", "fp16"),  # stored and run as fp16
        (QuantConfig("fp16", "fp32"), "fp16", "fp16"),  # the fp16 graph runs fp16 activations
    ],
)
def test_each_layer_input_is_scored_as_its_exported_graph_runs_it(config: QuantConfig, linear: str, conv: str) -> None:
    """With int8 activations, layers with weights of 4 bits or fewer (weight-only in the export,
    float inputs) and float-weight layers (an fp16 / fp32 graph) were scored with int8 inputs."""
    kinds = {"linear": "linear", "conv": "conv"}
    got = {name: layer_activations(config.activations, config.weight_precision(kind), config.weights)
           for name, kind in kinds.items()}  # fmt: skip
    assert got == {"linear": linear, "conv": conv}
    torch.manual_seed(0)
    model = add_fake_quant_(LinearThenConv(), config)
    x = 3.0 * torch.randn(2, 5, 16)
    with torch.no_grad():
        h = model.linear(x)
        plain = nn.functional.linear(x, model.linear.weight, model.linear.bias)
        assert torch.equal(h, nn.functional.linear(fake_quantize_activation(x, linear), model.linear.weight,
                                                   model.linear.bias)), config  # fmt: skip
        assert (linear == "fp32") == torch.equal(h, plain)
        y = h.transpose(1, 2)
        want = nn.functional.conv1d(fake_quantize_activation(y, conv), model.conv.weight, model.conv.bias, padding=1)
        assert torch.equal(model.conv(y), want), config


def test_only_int8_inputs_get_calibrated_ranges() -> None:
    """The int8 ranges a student carries (and the export reuses) name only layers that ship W8A8."""
    torch.manual_seed(0)
    model = add_fake_quant_(LinearThenConv(), QuantConfig("int4", "int8", {"conv": "int8"}))
    x = torch.randn(2, 5, 16)
    assert calibrate_activations_(model, lambda: model(x)) == 1
    assert list(static_activation_ranges(model)) == ["conv.weight"]


def test_input_rounding_alone_rebuilds_an_older_student_that_rounded_low_bit_inputs() -> None:
    """Students scored before version 7 rounded their low-bit layers' inputs to int8; the export
    rebuilds them (``scored_copy(inputs_only=...)``) by adding that rounding alone."""
    torch.manual_seed(0)
    model = LinearThenConv()
    weight = model.linear.weight.detach().clone()
    assert add_input_rounding_(model, "int8", filter_fn=lambda _m, fqn: fqn == "linear") == 1
    assert torch.equal(model.linear.weight, weight) and not hasattr(model.linear, "parametrizations")
    x = torch.randn(2, 5, 16)
    calibrate_activations_(model, lambda: model(x))
    assert list(static_activation_ranges(model)) == ["linear.weight"]
    amax = float(x.abs().amax())
    with torch.no_grad():
        want = nn.functional.linear(fake_quantize_activation(x, "int8", amax), weight, model.linear.bias)
        assert torch.equal(model.linear(x), want)
    strip_fake_quant_(model)
    with torch.no_grad():
        assert torch.equal(model.linear(x), nn.functional.linear(x, weight, model.linear.bias))
