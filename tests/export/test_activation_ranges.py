"""int8 graphs round each weight layer's input to the range the scored student calibrated."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from export_helpers import EVAL_TOKENS, MAX_TOKENS, _root, make_inputs, shared_voice
from onnx import numpy_helper

from autocompress.compress.fake_quant import (
    add_fake_quant_,
    calibrate_activations_,
    fake_quantize_activation,
    fake_quantize_activation_u8,
    quantizable_weights,
    static_activation_ranges,
)
from autocompress.compress.plan import QuantConfig
from autocompress.exceptions import ExportError
from autocompress.export import VoiceExport
from autocompress.export.gpt_graphs import GPTPrefillGraph
from autocompress.export.ort_quant import WEIGHT_OPS, ActivationRange, activation_scale_zero_point, quantize_graph
from autocompress.export.parity import ParityBounds

LENIENT = ParityBounds(group_floor_db={g: -1e9 for g in ("gpt", "ref_enc", "enc_p", "flow", "dec")})


def _input_of_layer(fp32_graph: onnx.ModelProto, weight: np.ndarray) -> str:
    """The activation tensor a weight node reads, found by its constant weight (as torch holds it or transposed)."""
    inits = {i.name: numpy_helper.to_array(i) for i in fp32_graph.graph.initializer}
    for node in fp32_graph.graph.node:
        w = inits.get(node.input[1]) if node.op_type in WEIGHT_OPS and len(node.input) > 1 else None
        if w is not None and any(w.shape == c.shape and np.array_equal(w, c) for c in (weight, weight.T)):
            return node.input[0]
    raise AssertionError("no node holds that weight")


def _quantize_params(model: onnx.ModelProto, tensor: str) -> tuple[float, int]:
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] == tensor:
            return inits[node.input[1]].item(), int(inits[node.input[2]].item())
    raise AssertionError(f"{tensor} is not quantized")


@pytest.fixture(scope="module")
def student_export():  # noqa: ANN201
    """The tiny voice with int8 GPT fake quantization calibrated on other utterances than the
    export's, exported (its hooks carry the ranges)."""
    student = copy.deepcopy(shared_voice())
    add_fake_quant_(student.gpt, QuantConfig("int8", "int8"))
    graph = GPTPrefillGraph(student.gpt).eval()

    def run() -> None:
        for item in make_inputs(3, seed=7):
            graph(torch.from_numpy(item.phones).long()[None], torch.randn(1, 1024, item.phones.size),
                  torch.from_numpy(item.prompt_codes).long()[None])  # fmt: skip

    with torch.no_grad():
        assert calibrate_activations_(student.gpt, run) > 0
    export = VoiceExport(
        student, make_inputs(), exporter="legacy", max_tokens=MAX_TOKENS, eval_tokens=EVAL_TOKENS, work_parent=_root()
    )
    yield student, export
    export.close()


def test_int8_gpt_graphs_take_the_scored_students_ranges(student_export) -> None:  # noqa: ANN001
    student, export = student_export
    ranges = static_activation_ranges(student.gpt)
    out = _root() / "bundle_student_ranges"
    bundle = export.bundle(None, out, None, precisions={"gpt": "int8"}, bounds=LENIENT, n_samples=1, upstream=False,
                           threads=1)  # fmt: skip
    assert bundle.manifest.modules["gpt"].used == "int8"
    weights = dict(export.gpt.state_dict())
    for graph in ("gpt_prefill", "gpt_decode"):
        fp32 = onnx.load(str(export.work / f"{graph}.export.onnx"))
        shipped = onnx.load(str(out / f"{graph}.onnx"))
        for name in ("h.layers.0.self_attn.in_proj_weight", "h.layers.1.linear2.weight", "ar_predict_layer.weight"):
            tensor = _input_of_layer(fp32, weights[name].numpy())
            scale, zero = _quantize_params(shipped, tensor)
            assert scale == np.float32(ranges[name][1] / 127), (graph, name)
            assert zero == 0
    notes = " ".join(bundle.manifest.modules["gpt"].notes)
    assert "gpt_decode: int8 input ranges: 13 of 13 from the scored student" in notes


def test_ranges_given_to_the_bundle_replace_the_students(student_export) -> None:  # noqa: ANN001
    _, export = student_export
    with pytest.raises(ExportError, match="names no weight layer of the voice"):
        export.bundle(None, _root() / "bundle_bad_ranges", None, activation_ranges={"gpt.nowhere.weight": (-1.0, 1.0)})


def test_constant_products_of_no_weight_layer_stay_float(export) -> None:  # noqa: ANN001
    """enc_p's relative-position products read a folded constant table: the scored student never
    rounds them, so the int8 graph keeps them float; every weight layer is still quantized."""
    src = export.work / "enc_p.export.onnx"
    layers = [ActivationRange(getattr(m, n).detach().numpy(), None, None, f)
              for f, m, n, _, _ in quantizable_weights(export.sovits)]  # fmt: skip
    dst = export.work / "enc_p.ranges-test.onnx"
    notes = quantize_graph(src, dst, "int8", export.refs.cases["enc_p"].feeds, activation_ranges=layers)
    fp32, shipped = onnx.load(str(src)), onnx.load(str(dst))
    inits = {i.name for i in fp32.graph.initializer}
    constant_b = {n.name for n in fp32.graph.node if n.op_type == "MatMul" and n.input[1] in inits}
    still_float = {n.name for n in shipped.graph.node if n.op_type == "MatMul" and n.input[1] in inits}
    assert still_float and still_float == constant_b  # enc_p's layers are convolutions: these are those products
    quantized_inputs = {n.input[0] for n in shipped.graph.node if n.op_type == "QuantizeLinear"}
    sovits = dict(export.sovits.state_dict())
    for name in ("enc_p.ssl_proj.weight", "enc_p.encoder_text.attn_layers.0.conv_q.weight"):
        assert _input_of_layer(fp32, sovits[name].numpy()) in quantized_inputs
    assert any(f"{len(still_float)} constant-weight products of no weight layer kept float" in n for n in notes)


@pytest.mark.parametrize("symmetric", [True, False])
def test_scale_and_zero_point_round_as_the_fake_quantization(symmetric: bool) -> None:
    low, high = -0.7, 2.3
    x = torch.linspace(-3.0, 3.0, 6001)  # beyond the range on both sides
    scale, zero = activation_scale_zero_point(low, high, symmetric)
    lo, hi = (-128, 127) if symmetric else (0, 255)
    q = np.clip(np.rint(x.numpy() / scale) + zero, lo, hi)
    onnx_rounded = ((q - zero) * scale).astype(np.float32)
    student = fake_quantize_activation(x, "int8", high) if symmetric else fake_quantize_activation_u8(x, low, high)
    np.testing.assert_allclose(onnx_rounded, student.numpy(), rtol=0, atol=1e-6)
