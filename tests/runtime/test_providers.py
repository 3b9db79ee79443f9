"""Choosing the onnxruntime provider of a bundle: ``auto``/``cpu`` as before, ``cuda``, and the
opt-in ``tensorrt`` (its per-graph options and its refusals). No test here has a GPU or TensorRT:
the TensorRT sessions are checked up to what onnxruntime is asked for."""

from __future__ import annotations

import ctypes
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import autocompress.runtime.session as session_mod
from autocompress.cli.main import main
from autocompress.exceptions import ConfigError, ExportError
from autocompress.runtime import BundleRunner, read_manifest
from autocompress.runtime.session import (
    CPU,
    CUDA,
    TENSORRT,
    available_providers,
    bundle_cache_key,
    describe_device,
    device_of,
    graph_kind,
    open_session,
    tensorrt_options,
)


@pytest.fixture(scope="module")
def bundle_mixed(helpers):  # noqa: ANN001, ANN201
    """int8 (enc_p), fp16 (ref_enc, flow), weight-only int4 (gpt, dec) graphs."""
    return helpers.shared_bundle("mixed_a")


@pytest.fixture()
def cache_home(tmp_path, monkeypatch) -> Path:  # noqa: ANN001
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def gpu_here(monkeypatch) -> None:  # noqa: ANN001
    """As on a machine with a GPU driver and the provider libraries loadable (nothing is loaded)."""
    monkeypatch.setattr(session_mod, "_gpu_driver_present", lambda: True)
    monkeypatch.setattr(session_mod, "_preload_cuda_libraries", lambda: None)
    monkeypatch.setattr(session_mod, "_preload_tensorrt_libraries", lambda: None)
    monkeypatch.setattr(session_mod, "_provider_library_error", lambda provider: None)
    monkeypatch.setattr(session_mod.ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])


class _Started:
    """A CPU session that says it runs on the providers it was asked for (as on a GPU machine)."""

    def __init__(self, real: ort.InferenceSession, providers: list[str]) -> None:
        self._real, self._providers = real, providers

    def get_providers(self) -> list[str]:
        return list(self._providers)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._real, name)


def _spy_sessions(monkeypatch, started: bool = True) -> list[dict]:  # noqa: ANN001
    """Record what each InferenceSession is asked for; open it on the CPU."""
    asked: list[dict] = []
    real = ort.InferenceSession

    def spy(path, sess_options=None, providers=None, **kw):  # noqa: ANN001, ANN202
        asked.append({"path": Path(path), "providers": providers, **kw})
        kw.pop("enable_fallback", None)
        session = real(path, sess_options=sess_options, providers=[CPU], **kw)
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        return _Started(session, names) if started else session

    monkeypatch.setattr(session_mod.ort, "InferenceSession", spy)
    return asked


def _onnx_kind(path: Path) -> str:
    """The graph's kind read with the onnx package (the runtime's own scan must agree)."""
    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in model.graph.node)
    if ops["QuantizeLinear"]:
        return "int8"
    return "fp16" if any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer) else "fp32"


def test_each_graph_kind_gets_its_own_tensorrt_precision_flags(bundle_mixed, bundle_fp32, cache_home) -> None:
    seen = set()
    for bundle in (bundle_mixed, bundle_fp32):
        for name, entry in read_manifest(bundle.path).graphs.items():
            path = bundle.path / entry.file
            kind = graph_kind(path)
            assert kind == _onnx_kind(path), name
            seen.add((entry.precision, kind))
            options = tensorrt_options(path, cache_home / "engines" / name)
            # int8 only for explicit int8 QDQ (no calibration table), fp16 only for an fp16 graph
            assert options["trt_int8_enable"] is (kind == "int8"), name
            assert options["trt_fp16_enable"] is (kind == "fp16"), name
            assert "trt_int8_calibration_table_name" not in options
            assert options["trt_engine_cache_enable"] is True and options["trt_timing_cache_enable"] is True
            assert options["trt_engine_cache_path"] == str(cache_home / "engines" / name)
            assert options["trt_timing_cache_path"] == str(cache_home / "autocompress" / "tensorrt")
            assert Path(options["trt_engine_cache_path"]).is_dir()
    # an int8 graph, fp16 graphs, weight-only int4 graphs (no 8-bit QDQ: no int8) and fp32 ones
    assert seen == {("int8", "int8"), ("fp16", "fp16"), ("int4", "fp32"), ("fp32", "fp32")}


def _linear_graph(tmp_path: Path) -> tuple[Path, list[dict]]:
    """An fp32 graph of one 64 -> 32 MatMul, saved as ``fp32.onnx``, and calibration feeds for it."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc/MatMul")], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 32])], weights,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    src = tmp_path / "fp32.onnx"
    onnx.save_model(model, str(src))
    return src, [{"x": rng.standard_normal((1, 1, 64)).astype(np.float32)}]


def test_an_int8_part_of_a_low_bit_graph_turns_tensorrt_int8_on(tmp_path) -> None:
    from autocompress.export.ort_quant import quantize_graph

    src, feeds = _linear_graph(tmp_path)
    dst = tmp_path / "int4.onnx"
    quantize_graph(src, dst, "int4", feeds, int8_op_types=("MatMul",))  # the MatMul stored as int8 QDQ
    assert graph_kind(dst) == _onnx_kind(dst) == "int8"
    assert graph_kind(src) == "fp32"


def test_a_tensorrt_runner_asks_each_graph_for_tensorrt_then_cuda_then_cpu(
    bundle_mixed, cache_home, gpu_here, monkeypatch
) -> None:
    asked = _spy_sessions(monkeypatch)
    runner = BundleRunner(bundle_mixed.path, threads=1, provider="tensorrt")
    assert runner.device == "tensorrt"
    manifest = read_manifest(bundle_mixed.path)
    key = bundle_cache_key(bundle_mixed.path / "manifest.json")
    by_file = {a["path"].name: a for a in asked}
    assert len(by_file) == len(manifest.graphs)
    for name, entry in manifest.graphs.items():
        call = by_file[Path(entry.file).name]
        assert call["enable_fallback"] == 0  # no silent retry without TensorRT
        (trt, options), (cuda, cuda_options), cpu = call["providers"]
        assert (trt, cuda, cpu) == (TENSORRT, CUDA, CPU)
        assert cuda_options["cudnn_conv_algo_search"] == "HEURISTIC"
        kind = graph_kind(bundle_mixed.path / entry.file)
        assert (options["trt_int8_enable"], options["trt_fp16_enable"]) == (kind == "int8", kind == "fp16")
        assert options["trt_engine_cache_path"] == str(cache_home / "autocompress" / "tensorrt" / key / name)
    assert describe_device(runner.device).startswith("tensorrt: onnxruntime TensorrtExecutionProvider")


def test_tensorrt_is_refused_in_one_line_naming_what_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(session_mod.ort, "get_available_providers", lambda: [CPU])
    with pytest.raises(ExportError, match=r"no TensorrtExecutionProvider; install onnxruntime-gpu") as e:
        available_providers(provider="tensorrt")
    assert "\n" not in str(e.value)

    monkeypatch.setattr(session_mod.ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    monkeypatch.setattr(session_mod, "_gpu_driver_present", lambda: False)
    with pytest.raises(ExportError, match="no NVIDIA GPU driver on this machine"):
        available_providers(provider="tensorrt")
    with pytest.raises(ExportError, match="--provider cuda: no NVIDIA GPU driver"):
        available_providers(provider="cuda")

    # the driver is there, TensorRT's libraries are not
    monkeypatch.setattr(session_mod, "_gpu_driver_present", lambda: True)
    monkeypatch.setattr(session_mod, "_preload_cuda_libraries", lambda: None)
    monkeypatch.setattr(session_mod, "_preload_tensorrt_libraries", lambda: None)
    monkeypatch.setattr(session_mod, "_provider_library_error",
                        lambda p: "libnvinfer.so.10: cannot open shared object file: No such file or directory")
    monkeypatch.setattr(session_mod, "_tensorrt_major", lambda: "10")
    monkeypatch.setattr(session_mod.ort, "cuda_version", "12.8", raising=False)
    with pytest.raises(ExportError) as e:
        available_providers(provider="tensorrt")
    line = str(e.value)
    assert "\n" not in line
    assert "TensorrtExecutionProvider cannot load here (libnvinfer.so.10: cannot open shared object file" in line
    assert "pip install 'tensorrt-cu12==10.*'" in line and "system TensorRT" in line

    monkeypatch.setattr(session_mod, "_provider_library_error", lambda p: "libcuda.so.1: cannot open shared object file")
    with pytest.raises(ExportError, match=r"\(libcuda.so.1: cannot open shared object file\); install the NVIDIA GPU driver"):
        available_providers(provider="cuda")


def test_the_provider_library_check_names_the_library_the_loader_lacks(monkeypatch) -> None:
    lib = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_tensorrt.so"
    if not sys.platform.startswith("linux") or not lib.is_file():
        pytest.skip("this onnxruntime build has no TensorRT provider library")

    def missing(path, mode=0):  # noqa: ANN001, ANN202
        raise OSError(f"{path}: libnvinfer.so.10: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(session_mod.ctypes, "CDLL", missing)
    assert session_mod._provider_library_error("tensorrt") == (
        "libnvinfer.so.10: cannot open shared object file: No such file or directory"
    )
    assert session_mod._tensorrt_major().isdigit()  # read from the provider library's own name for it


def test_a_tensorrt_session_that_does_not_start_is_refused_not_run_elsewhere(bundle_fp32, cache_home, monkeypatch):
    path = bundle_fp32.path / "ref_enc.onnx"
    assert path.is_file()
    _spy_sessions(monkeypatch, started=False)  # onnxruntime dropped TensorRT and opened it on the CPU
    with pytest.raises(ExportError, match=r"--provider tensorrt: onnxruntime opened ref_enc.onnx on "
                                          r"CPUExecutionProvider instead of TensorRT; install TensorRT"):
        open_session(path, [TENSORRT, CUDA, CPU], 1, cache_home / "e")

    def failing(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("Please install TensorRT libraries as mentioned in the GPU requirements page\nmore")

    monkeypatch.setattr(session_mod.ort, "InferenceSession", failing)
    with pytest.raises(ExportError) as e:
        open_session(path, [TENSORRT, CUDA, CPU], 1, cache_home / "e")
    assert str(e.value).startswith("--provider tensorrt: TensorRT did not start for ref_enc.onnx (Please install")
    assert "\n" not in str(e.value)


def test_an_explicit_cuda_provider_is_refused_when_cuda_does_not_start(bundle_fp32, gpu_here, monkeypatch):
    _spy_sessions(monkeypatch, started=False)
    with pytest.raises(ExportError, match="--provider cuda: onnxruntime could not start CUDA for graph"):
        BundleRunner(bundle_fp32.path, threads=1, provider="cuda")
    runner = BundleRunner(bundle_fp32.path, threads=1)  # auto: the CPU, as before
    assert runner.device == "cpu"


def test_auto_and_cpu_choose_as_before(monkeypatch) -> None:
    monkeypatch.setattr(session_mod.ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    monkeypatch.setattr(session_mod, "_preload_cuda_libraries", lambda: None)
    monkeypatch.setattr(session_mod, "_gpu_driver_present", lambda: True)
    assert available_providers() == available_providers(True, "auto") == [CUDA, CPU]  # never TensorRT by default
    assert available_providers(False) == available_providers(provider="cpu") == [CPU]
    monkeypatch.setattr(session_mod, "_gpu_driver_present", lambda: False)
    assert available_providers() == [CPU]
    with pytest.raises(ConfigError, match="unknown provider 'trt'"):
        available_providers(provider="trt")


def test_the_runner_refuses_contradicting_provider_arguments(bundle_fp32) -> None:
    with pytest.raises(ConfigError, match="prefer_gpu=False asks for the CPU provider"):
        BundleRunner(bundle_fp32.path, prefer_gpu=False, provider="tensorrt")
    with pytest.raises(ConfigError, match="unknown provider"):
        BundleRunner(bundle_fp32.path, provider="TensorRT")
    assert BundleRunner(bundle_fp32.path, prefer_gpu=False, threads=1, provider="cpu").device == "cpu"


def test_device_of_names_the_provider_that_runs() -> None:
    for providers, device in (([TENSORRT, CUDA, CPU], "tensorrt"), ([CUDA, CPU], "cuda"), ([CPU], "cpu")):
        assert device_of(_Started(None, providers)) == device


def test_pip_tensorrt_libraries_are_loaded_core_first_and_globally(tmp_path, monkeypatch) -> None:
    package = tmp_path / "tensorrt_libs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("libnvonnxparser.so.10", "libnvinfer_plugin.so.10", "libnvinfer.so.10", "libnvinfer_lean.so.10"):
        (package / name).write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = []
    monkeypatch.setattr(session_mod.ctypes, "CDLL", lambda path, mode=0: loaded.append((Path(path).name, mode)))
    session_mod._preload_tensorrt_libraries()
    assert loaded == [(n, ctypes.RTLD_GLOBAL) for n in
                      ("libnvinfer.so.10", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10")]


def test_synth_provider_tensorrt_says_in_one_line_why_it_cannot_run(bundle_fp32, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(session_mod, "_gpu_driver_present", lambda: False)
    monkeypatch.setattr(session_mod.ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    code = main(["synth", "--bundle", str(bundle_fp32.path), "--provider", "tensorrt", "--out", str(tmp_path / "a.wav")])
    err = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "a.wav").exists()
    assert err.startswith("error: --provider tensorrt: no NVIDIA GPU driver") and err.count("\n") == 1


def test_the_kv_cache_stays_on_the_gpu_under_tensorrt_as_under_cuda():
    """Under TensorRT the cache was kept in host memory and copied to the GPU at every decode step."""
    from types import SimpleNamespace

    from autocompress.runtime.gpt_loop import GPTLoop

    def decode(first: str):
        past = [SimpleNamespace(name=f"past_{k}_0", shape=[1, "rows", 8], type="tensor(float)") for k in "kv"]
        return SimpleNamespace(get_providers=lambda: [first, "CPUExecutionProvider"], get_inputs=lambda: past,
                               get_outputs=lambda: [SimpleNamespace(shape=[1, 1, 33])])

    on = {p: GPTLoop(None, decode(p), eos=32, pe_rows=64).on_gpu
          for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")}
    assert on == {"TensorrtExecutionProvider": True, "CUDAExecutionProvider": True, "CPUExecutionProvider": False}


def test_an_asymmetric_u8_graph_is_refused_for_tensorrt(tmp_path, cache_home) -> None:  # noqa: ANN001
    """A CPU target's export holds u8 QDQ, which TensorRT does not run as int8: int8 mode was turned on anyway."""
    from autocompress.export.ort_quant import quantize_graph
    from autocompress.runtime.session import tensorrt_options

    src, feeds = _linear_graph(tmp_path)
    for symmetric, kind in ((False, "int8-u8"), (True, "int8")):
        dst = tmp_path / f"int8-{symmetric}.onnx"
        quantize_graph(src, dst, "int8", feeds, symmetric_activations=symmetric)
        assert graph_kind(dst) == kind
    with pytest.raises(ExportError, match="asymmetric u8 int8 .* TensorRT does not run as int8"):
        tensorrt_options(tmp_path / "int8-False.onnx", tmp_path / "cache")
    assert tensorrt_options(tmp_path / "int8-True.onnx", tmp_path / "cache")["trt_int8_enable"] is True
