"""The runtime's own ONNX scan (``graph_kind``) on files that are not whole ONNX models: each is
refused in one line naming the file, never answered from a part or crashed on; subgraphs and
external data are read right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from autocompress.exceptions import ExportError
from autocompress.runtime.session import CPU, CUDA, TENSORRT, graph_kind, open_session


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _sub(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def _qdq_in_if_model() -> onnx.ModelProto:
    """A model whose only int8 QDQ nodes sit in an If branch."""
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    then = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [scale, zero],
    )  # fmt: skip
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["y2"])], "else", [],
                              [helper.make_tensor_value_info("y2", TensorProto.FLOAT, [4])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["out"], then_branch=then, else_branch=other)], "m",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4])],
    )  # fmt: skip
    return helper.make_model(graph)


def _refused(path: Path) -> str:
    with pytest.raises(ExportError) as e:
        graph_kind(path)
    line = str(e.value)
    assert "\n" not in line and str(path) in line, line
    return line


def test_subgraphs_and_external_data_are_read(tmp_path) -> None:
    path = tmp_path / "if.onnx"
    path.write_bytes(_qdq_in_if_model().SerializeToString())
    assert graph_kind(path) == "int8"

    weights = numpy_helper.from_array(np.ones((32, 32), np.float16), "w")
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["o"])], "e", [],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT16, [32, 32])], [weights])
    external = tmp_path / "external.onnx"
    onnx.save_model(helper.make_model(graph), str(external), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="external.data", size_threshold=0)
    assert (tmp_path / "external.data").is_file()
    assert graph_kind(external) == "fp16"


@pytest.mark.parametrize("cut", [1, 2, 5, 20, -1])
def test_a_truncated_model_is_refused(tmp_path, cut: int) -> None:
    data = _qdq_in_if_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:cut])
    assert "is not an ONNX model" in _refused(path)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty
        bytes(1000),  # zeros
        b"\xff" * 1000,  # one endless number
        b"RIFF$\x00\x00\x00WAVEfmt " + bytes(64),  # a recording
        b"just some text, not a model\n",
        _key(1, 0) + _varint(9),  # an ir_version and nothing else
        _key(7, 0) + _varint(1),  # the graph field as a number
        _sub(7, _key(1, 0) + _varint(5)),  # a node as a number
        _sub(7, _sub(1, _key(1, 0) + _varint(2**60))),  # a node input as a huge number
        _sub(7, _sub(5, _sub(2, b"x"))),  # a tensor's data type as bytes
        _sub(7, b"") + _key(3, 1) + b"\x00\x00",  # a fixed-width field cut short
    ],
)
def test_bytes_that_are_not_a_model_are_refused_in_one_line(tmp_path, data: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    assert "is not an ONNX model" in _refused(path)


def test_subgraphs_nested_too_deep_are_refused(tmp_path) -> None:
    graph = b""
    for _ in range(5000):  # graph { node { attribute { g: graph } } }
        graph = _sub(1, _sub(5, _sub(6, graph)))
    path = tmp_path / "deep.onnx"
    path.write_bytes(_sub(7, graph))
    assert "nested too deep" in _refused(path)


def test_a_missing_file_or_a_folder_is_refused(tmp_path) -> None:
    assert "cannot read graph" in _refused(tmp_path / "missing.onnx")
    assert "cannot read graph" in _refused(tmp_path)


def test_a_tensorrt_session_on_a_non_model_names_the_file_not_tensorrt(tmp_path, monkeypatch) -> None:
    """An empty file read as an fp32 graph reached onnxruntime and was reported as TensorRT not starting."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ExportError, match=r"empty\.onnx is not an ONNX model \(no graph in it\)") as e:
        open_session(path, [TENSORRT, CUDA, CPU], 1, tmp_path / "engines")
    assert "install TensorRT" not in str(e.value)


def test_a_graph_tensorrt_cannot_build_is_not_blamed_on_missing_libraries(tmp_path, monkeypatch) -> None:
    """With TensorRT's libraries loaded, an engine TensorRT could not build was answered "install TensorRT"."""
    import autocompress.runtime.session as session_mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "ok.onnx"
    path.write_bytes(_qdq_in_if_model().SerializeToString())

    def failing(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : TensorRT EP failed to create engine from network.\nmore")

    monkeypatch.setattr(session_mod.ort, "InferenceSession", failing)
    with pytest.raises(ExportError) as e:
        open_session(path, [TENSORRT, CUDA, CPU], 1, tmp_path / "engines")
    line = str(e.value)
    assert line.startswith("--provider tensorrt: TensorRT did not start for ok.onnx (")
    assert "failed to create engine" in line and "--provider auto or cuda" in line
    assert "pip install" not in line and "\n" not in line
