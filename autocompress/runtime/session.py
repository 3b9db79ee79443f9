"""onnxruntime sessions for a bundle: the CUDA provider when it works, else the CPU one."""

from __future__ import annotations

import sys
from pathlib import Path

import onnxruntime as ort

from autocompress.exceptions import ExportError

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_QUIET = 3  # onnxruntime log severity for our sessions: errors only
_DEFAULT_SEVERITY = 2  # onnxruntime's default logger severity (warnings)
# onnxruntime's basic pass fuses a MatMul and its bias Add into a float Gemm before its QDQ pass
# can turn an int8 MatMul into MatMulIntegerToFloat, so every linear layer with a bias (all of the
# GPT's) would dequantize its weights and multiply in float on each call: an int8 full-size GPT
# step took 94 ms instead of 5.5 ms (fp32: 11 ms) on the CPU provider. Left out on CPU sessions.
_CPU_DISABLED_OPTIMIZERS = ["MatMulAddFusion"]
# The CUDA provider benchmarks every cuDNN convolution algorithm (EXHAUSTIVE) for each new input
# shape; the SoVITS time axis changes with every utterance, so each one paid that search again.
_CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}


def available_providers(prefer_gpu: bool = True) -> list[str]:
    """Providers to ask for: CUDA then CPU when this onnxruntime build has CUDA and a GPU
    driver is present, else CPU. Whether CUDA really starts shows in :func:`device_of`."""
    have = ort.get_available_providers()
    if prefer_gpu and CUDA in have and _gpu_driver_present():
        _preload_cuda_libraries()
        return [CUDA, CPU]
    return [CPU]


_preloaded = False


def _preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries of the pip ``nvidia-*`` packages, which the CUDA
    provider finds by itself only once torch has loaded them (the runtime never imports torch):
    without them every bundle ran on the CPU of a GPU machine. A system-wide CUDA install still
    serves the provider when they are absent."""
    global _preloaded
    if _preloaded or not hasattr(ort, "preload_dlls"):
        return
    _preloaded = True
    try:
        ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
    except Exception:  # noqa: BLE001, S110 - onnxruntime reports what it could not load itself
        pass


def _gpu_driver_present() -> bool:
    """False on Linux machines without the NVIDIA driver (saves a noisy failed CUDA load)."""
    if sys.platform.startswith("linux"):
        return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()
    return True


def open_session(
    path: str | Path, providers: list[str], threads: int | None = None
) -> ort.InferenceSession:
    """Open one graph; ``threads`` sets the intra-op thread count (None = onnxruntime's default).

    On the CPU provider an int8 graph's linear layers run as integer kernels (see
    ``_CPU_DISABLED_OPTIMIZERS``), also when CUDA was asked for but does not start here.

    Raises:
        ExportError: the file is not a graph onnxruntime can load.
    """
    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        if CUDA in providers:
            # A CUDA provider that fails to load logs through the default logger, which the
            # session options do not reach; the fallback to CPU is detected by the caller.
            ort.set_default_logger_severity(4)
        disabled = _CPU_DISABLED_OPTIMIZERS if CUDA not in providers else None
        chosen = [(CUDA, dict(_CUDA_OPTIONS)) if p == CUDA else p for p in providers]
        session = ort.InferenceSession(str(path), sess_options=options, providers=chosen, disabled_optimizers=disabled)
        if CUDA in providers and device_of(session) == "cpu":
            # CUDA did not start and onnxruntime fell back to the CPU provider with the graph
            # optimized for CUDA: an int8 GPT step took 323 ms instead of 10 ms. Open it again
            # as a CPU session.
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=[CPU], disabled_optimizers=_CPU_DISABLED_OPTIMIZERS
            )
        return session
    except Exception as e:  # onnxruntime raises its own unexported exception types
        raise ExportError(f"onnxruntime cannot load {path}: {e}") from e
    finally:
        if CUDA in providers:
            ort.set_default_logger_severity(_DEFAULT_SEVERITY)


def device_of(session: ort.InferenceSession) -> str:
    """``cuda`` when the session really runs on the CUDA provider, else ``cpu``."""
    return "cuda" if session.get_providers()[0] == CUDA else "cpu"


def describe_device(device: str, threads: int | None = None) -> str:
    """A label for the device a figure was measured on: ``cpu: <model>, onnxruntime`` or ``cuda``."""
    if device == "cuda":
        return "cuda: onnxruntime CUDAExecutionProvider"
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads_note = f", {threads} thread{'' if threads == 1 else 's'}" if threads else ""
    return f"cpu: {model or 'unknown model'}, onnxruntime{threads_note}"


__all__ = ["CPU", "CUDA", "available_providers", "describe_device", "device_of", "open_session"]
