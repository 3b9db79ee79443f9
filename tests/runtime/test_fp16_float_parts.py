"""Integer graphs with fp16 float parts (a GPU target's export): what the runtime reads off
them and how it opens them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from autocompress.export.ort_quant import quantize_graph
from autocompress.runtime import session as session_mod
from autocompress.runtime.session import graph_kind, open_session, tensorrt_options


def _linear_with_bias(path: Path) -> list[dict[str, np.ndarray]]:
    """An fp32 graph of two linear layers with biases on one position (as the GPT's decode step
    exports), saved at ``path``; returns calibration feeds for it."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((64, 96)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(96).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((96, 32)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1/MatMul"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1/Add"),
        helper.make_node("Relu", ["h1"], ["h2"], name="act"),
        helper.make_node("MatMul", ["h2", "w2"], ["y0"], name="fc2/MatMul"),
        helper.make_node("Add", ["y0", "b2"], ["y"], name="fc2/Add"),
    ]
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 32])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save_model(model, str(path))
    return [{"x": rng.standard_normal((1, 1, 64)).astype(np.float32)} for _ in range(3)]


def _graphs(tmp_path: Path) -> tuple[dict[str, Path], list[dict[str, np.ndarray]]]:
    src = tmp_path / "fp32.onnx"
    feeds = _linear_with_bias(src)
    out = {}
    for name, precision, floats in (("int8", "int8", "fp32"), ("int8-fp16", "int8", "fp16"), ("int4-fp16", "int4", "fp16")):
        out[name] = tmp_path / f"{name}.onnx"
        quantize_graph(src, out[name], precision, feeds, floats=floats)
    return out, feeds


def test_an_int8_graph_with_fp16_float_parts_gets_tensorrt_int8_and_fp16(tmp_path) -> None:
    graphs, _ = _graphs(tmp_path)
    assert graph_kind(graphs["int8"]) == "int8"
    assert graph_kind(graphs["int8-fp16"]) == "int8-fp16"
    assert graph_kind(graphs["int4-fp16"]) == "fp16"  # weight-only: no 8-bit QDQ, fp16 around it
    flags = {
        name: (o["trt_int8_enable"], o["trt_fp16_enable"])
        for name, o in ((n, tensorrt_options(p, tmp_path / "cache" / n)) for n, p in graphs.items())
    }
    assert flags == {"int8": (True, False), "int8-fp16": (True, True), "int4-fp16": (False, True)}


def test_the_cpu_session_leaves_out_the_s8_to_u8_pass_only_for_fp16_float_qdq_graphs(tmp_path, monkeypatch) -> None:
    """onnxruntime's s8 -> u8 rewrite breaks such graphs' QuantizeLinear types (seen at opset
    21); it stays on for an fp32-float int8 graph, whose x86 speed it gives."""
    graphs, feeds = _graphs(tmp_path)
    asked = {}
    real = ort.InferenceSession

    def spy(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        asked[Path(path).name] = list(kwargs.get("disabled_optimizers") or [])
        return real(path, *args, **kwargs)

    monkeypatch.setattr(session_mod.ort, "InferenceSession", spy)
    for path in graphs.values():
        session = open_session(path, ["CPUExecutionProvider"], 1)
        assert session.run(None, feeds[0])[0].shape == (1, 1, 32)
    assert "QDQS8ToU8Transformer" in asked["int8-fp16.onnx"]
    assert "QDQS8ToU8Transformer" not in asked["int8.onnx"] and "QDQS8ToU8Transformer" not in asked["int4-fp16.onnx"]
    assert all("MatMulAddFusion" in v for v in asked.values())

