"""onnxruntime sessions of a bundle's graphs: how the CPU provider runs an int8 graph, and what
the runtime reads off integer graphs with fp16 float parts (a GPU target's export)."""

from __future__ import annotations

import platform
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from autocompress.export.ort_quant import quantize_graph
from autocompress.runtime import session as session_mod
from autocompress.runtime.session import device_of, graph_kind, open_session, tensorrt_options


def _linear_with_bias(path: Path) -> None:
    """An fp32 graph of two linear layers with biases (MatMul + Add each) on one position, as
    torch exports the GPT's decode step (static shapes let onnxruntime fuse each into a Gemm)."""
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


def test_an_int8_graph_runs_its_linear_layers_as_integer_kernels_on_the_cpu(tmp_path, monkeypatch) -> None:
    src, dst, optimized = tmp_path / "fp32.onnx", tmp_path / "int8.onnx", tmp_path / "optimized.onnx"
    _linear_with_bias(src)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 1, 64)).astype(np.float32)} for _ in range(3)]
    quantize_graph(src, dst, "int8", feeds, symmetric_activations=False)  # the CPU targets' u8 form

    real = ort.SessionOptions

    def dumping_options() -> ort.SessionOptions:  # the session writes the graph it will run
        options = real()
        options.optimized_model_filepath = str(optimized)
        return options

    monkeypatch.setattr(ort, "SessionOptions", dumping_options)
    session = open_session(dst, ["CPUExecutionProvider"])
    ops = Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    # Not a float Gemm fed by weights dequantized on every call (onnxruntime's MatMul + Add
    # fusion runs first and hides the MatMuls from its int8 pass).
    assert ops["MatMulIntegerToFloat"] == 2 and ops["Gemm"] == 0, dict(ops)
    want = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]
    got = session.run(None, feeds[0])[0]
    assert got.shape == want.shape
    snr = 10 * np.log10(np.sum(want**2) / np.sum((want - got) ** 2))
    assert snr > 20, snr


def test_an_fp32_graph_on_the_cpu_still_computes_its_layers_exactly(tmp_path) -> None:
    src = tmp_path / "fp32.onnx"
    _linear_with_bias(src)
    x = np.random.default_rng(2).standard_normal((1, 1, 64)).astype(np.float32)
    got = open_session(src, ["CPUExecutionProvider"]).run(None, {"x": x})[0]
    m = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(src)).graph.initializer}
    want = np.maximum(x @ m["w1"] + m["b1"], 0) @ m["w2"] + m["b2"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def _int8_and_dump(tmp_path: Path, monkeypatch, symmetric: bool) -> tuple[Path, Path, list[dict[str, np.ndarray]]]:
    """The two-layer graph stored as int8 QDQ (s8 or u8 activations), and the file every session
    opened from now on writes its optimized graph to."""
    src, dst, optimized = tmp_path / "fp32.onnx", tmp_path / "int8.onnx", tmp_path / "optimized.onnx"
    _linear_with_bias(src)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 1, 64)).astype(np.float32)} for _ in range(3)]
    quantize_graph(src, dst, "int8", feeds, symmetric_activations=symmetric)
    real = ort.SessionOptions

    def dumping_options() -> ort.SessionOptions:
        options = real()
        options.optimized_model_filepath = str(optimized)
        return options

    monkeypatch.setattr(ort, "SessionOptions", dumping_options)
    return dst, optimized, feeds


def test_an_int8_graph_falling_back_from_cuda_to_the_cpu_still_runs_integer_kernels(tmp_path, monkeypatch) -> None:
    # A GPU target's bundle (s8) on a machine where CUDA is listed but does not start: the
    # session lands on the CPU provider and must be set up as a CPU session.
    dst, optimized, feeds = _int8_and_dump(tmp_path, monkeypatch, symmetric=True)
    session = open_session(dst, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    if device_of(session) == "cuda":
        pytest.skip("CUDA runs on this machine: no fallback to test")
    assert session.get_providers() == ["CPUExecutionProvider"]
    ops = Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    assert ops["MatMulIntegerToFloat"] == 2 and ops["Gemm"] == 0, dict(ops)
    want = open_session(dst, ["CPUExecutionProvider"]).run(None, feeds[0])[0]
    np.testing.assert_array_equal(session.run(None, feeds[0])[0], want)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 only: ARM runs s8 natively")
def test_an_s8_graph_on_an_x86_cpu_runs_the_u8_activation_kernels(tmp_path, monkeypatch) -> None:
    # onnxruntime's x86 CPU kernels for s8 x s8 are its portable C++ ones (about 5x slower than
    # fp32 for GPT-sized layers); by default it shifts s8 activations to u8 (zero point 128,
    # same values) so they run on the u8 x s8 kernels. Nothing here may turn that off.
    dst, optimized, feeds = _int8_and_dump(tmp_path, monkeypatch, symmetric=True)
    open_session(dst, ["CPUExecutionProvider"])
    model = onnx.load(str(optimized))
    inits = {i.name: i for i in model.graph.initializer}
    quantizers = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert sum(n.op_type == "MatMulIntegerToFloat" for n in model.graph.node) == 2
    assert quantizers and all(inits[n.input[2]].data_type == TensorProto.UINT8 for n in quantizers)


def test_a_cuda_session_asks_cudnn_for_heuristic_convolution_algorithms(tmp_path, monkeypatch) -> None:
    """The CUDA provider's default benchmarks every cuDNN algorithm for each new input shape,
    and a SoVITS graph meets a new time length with every utterance."""

    asked = []
    real = ort.InferenceSession

    def spy(path, sess_options=None, providers=None, **kw):  # noqa: ANN001, ANN202
        asked.append(providers)
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"], **kw)

    monkeypatch.setattr(session_mod.ort, "InferenceSession", spy)
    _linear_with_bias(tmp_path / "g.onnx")
    open_session(tmp_path / "g.onnx", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    cuda = asked[0][0]
    assert cuda[0] == "CUDAExecutionProvider" and cuda[1]["cudnn_conv_algo_search"] == "HEURISTIC"
    assert asked[0][1] == "CPUExecutionProvider"
    open_session(tmp_path / "g.onnx", ["CPUExecutionProvider"])
    assert asked[-1] == ["CPUExecutionProvider"]  # a CPU session gets no CUDA options


def test_the_cuda_provider_finds_the_pip_cuda_libraries_without_torch() -> None:
    """onnxruntime's CUDA provider looks for cuBLAS/cuDNN beside itself; the pip ``nvidia-*``
    libraries are found only after torch loads them, and the bundle runtime never imports
    torch: every bundle ran on the CPU of a GPU machine, saying only "measured on cpu"."""
    import os
    import subprocess
    import sys

    provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if not provider.is_file():
        pytest.skip("this onnxruntime build has no CUDA provider library")
    code = (
        "import ctypes, sys\n"
        "import autocompress.runtime.session as s\n"
        "assert 'torch' not in sys.modules\n"
        "s._preload_cuda_libraries()\n"
        f"try:\n    ctypes.CDLL({str(provider)!r})\nexcept OSError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         timeout=120).stdout  # fmt: skip
    assert "libcublas" not in out and "libcudnn" not in out and "libcudart" not in out, out  # only the driver may lack


# --------------------------------------------------------------------------- fp16 float parts


def _graphs(tmp_path: Path) -> tuple[dict[str, Path], list[dict[str, np.ndarray]]]:
    """The int8 graph of :func:`_linear_with_bias` with fp32 float parts, and the int8 and int4
    ones with fp16 float parts (a GPU target's export), with calibration feeds."""
    src = tmp_path / "fp32.onnx"
    _linear_with_bias(src)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 1, 64)).astype(np.float32)} for _ in range(3)]
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

