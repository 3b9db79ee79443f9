"""onnxruntime sessions for a bundle: the CUDA provider when it works, else the CPU one; or the
provider a user names (``tensorrt``, ``cuda``, ``cpu``).

A bundle's integer graphs (int8 QDQ, int4 / int2 weight-only) run their float parts (KV cache,
norms, attention, activations between layers, dequantized math) in fp16 when exported for a
target that runs fp16 (GPU targets), in fp32 for the ``cpu`` target: :func:`graph_kind` tells
them apart, TensorRT gets fp16 as well as int8 for the first, and the CPU provider opens them
as it opens fp32 ones (see ``_FP16_QDQ_DISABLED_OPTIMIZERS``)."""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import re
import sys
from pathlib import Path

import onnxruntime as ort

from autocompress.exceptions import ConfigError, ExportError

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# what ``synth --provider`` and ``BundleRunner(provider=...)`` take; ``auto`` is CUDA when it works, else CPU
PROVIDER_CHOICES = ("auto", "tensorrt", "cuda", "cpu")
_QUIET = 3  # onnxruntime log severity for our sessions: errors only
_DEFAULT_SEVERITY = 2  # onnxruntime's default logger severity (warnings)
# onnxruntime's basic pass fuses a MatMul and its bias Add into a float Gemm before its QDQ pass
# can turn an int8 MatMul into MatMulIntegerToFloat, so every linear layer with a bias (all of the
# GPT's) would dequantize its weights and multiply in float on each call: an int8 full-size GPT
# step took 94 ms instead of 5.5 ms (fp32: 11 ms) on the CPU provider. Left out on CPU sessions.
_CPU_DISABLED_OPTIMIZERS = ["MatMulAddFusion"]
# onnxruntime's x86 pass rewriting s8 QDQ as u8 leaves a QuantizeLinear whose output type no
# longer matches its zero point in a QDQ graph with fp16 float parts ("output_dtype INT8 does not
# match y_zero_point type UINT8", seen at opset 21), and it made no such graph faster here: left
# out for those graphs only (it speeds up fp32 s8 graphs on x86).
_FP16_QDQ_DISABLED_OPTIMIZERS = ["QDQS8ToU8Transformer"]
# The CUDA provider benchmarks every cuDNN convolution algorithm (EXHAUSTIVE) for each new input
# shape; the SoVITS time axis changes with every utterance, so each one paid that search again.
_CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}


def available_providers(prefer_gpu: bool = True, provider: str = "auto") -> list[str]:
    """Providers to ask for.

    ``auto`` (with ``prefer_gpu``): CUDA then CPU when this onnxruntime build has CUDA and a GPU
    driver is present, else CPU; whether CUDA really starts shows in :func:`device_of`. ``cpu``
    (or ``auto`` without ``prefer_gpu``): CPU. ``cuda``: CUDA then CPU; ``tensorrt``: TensorRT,
    then CUDA for the nodes TensorRT does not take, then CPU. These two are refused where they
    cannot start rather than run elsewhere.

    Raises:
        ConfigError: an unknown provider name.
        ExportError: ``cuda`` or ``tensorrt`` cannot run here (the line says what is missing).
    """
    if provider not in PROVIDER_CHOICES:
        raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDER_CHOICES)}")
    have = ort.get_available_providers()
    if provider == "cpu" or (provider == "auto" and not prefer_gpu):
        return [CPU]
    if provider == "auto":
        if CUDA in have and _gpu_driver_present():
            _preload_cuda_libraries()
            return [CUDA, CPU]
        return [CPU]
    wanted = TENSORRT if provider == "tensorrt" else CUDA
    if wanted not in have:
        raise ExportError(
            f"--provider {provider}: this onnxruntime ({_ort_build()}) has no {wanted}; "
            f"install onnxruntime-gpu instead of onnxruntime{_tensorrt_hint() if provider == 'tensorrt' else ''}"
        )
    if not _gpu_driver_present():
        raise ExportError(
            f"--provider {provider}: no NVIDIA GPU driver on this machine (no /dev/nvidiactl); "
            "run on a machine with an NVIDIA GPU and its driver, or use --provider auto or cpu"
        )
    _preload_cuda_libraries()
    if provider == "tensorrt":
        _preload_tensorrt_libraries()
    missing = _provider_library_error(provider)
    if missing:
        hint = _tensorrt_hint() if provider == "tensorrt" else _cuda_hint()
        if "libcuda.so" in missing:  # the driver's own library, not one a package brings
            hint = "; install the NVIDIA GPU driver (it brings libcuda), or use --provider auto or cpu"
        raise ExportError(f"--provider {provider}: onnxruntime's {wanted} cannot load here ({missing}){hint}")
    return [TENSORRT, CUDA, CPU] if provider == "tensorrt" else [CUDA, CPU]


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


def _preload_tensorrt_libraries() -> None:
    """Load TensorRT's libraries from the pip ``tensorrt`` wheels (the ``tensorrt_libs`` folder),
    which onnxruntime's TensorRT provider does not look in by itself. A system-wide TensorRT on
    the library path serves the provider when they are absent."""
    spec = importlib.util.find_spec("tensorrt_libs")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        # the core library first: the plugin and ONNX parser libraries depend on it
        for pattern in ("libnvinfer.so.*", "libnvinfer_plugin.so.*", "libnvonnxparser.so.*"):
            for lib in sorted(Path(folder).glob(pattern)):
                try:
                    ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
                except OSError:  # a broken wheel: the provider's own check below names what is missing
                    pass


def _provider_library_error(provider: str) -> str | None:
    """Why onnxruntime's provider library for ``cuda`` or ``tensorrt`` cannot load here (the first
    library the system loader could not find, as it words it), or None when it loads or when this
    platform's library is not checked."""
    lib = Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{provider}.so"
    if not sys.platform.startswith("linux") or not lib.is_file():
        return None
    try:
        ctypes.CDLL(str(lib))
    except OSError as e:
        text = _first_line(e)
        return text.replace(f"{lib}: ", "")
    return None


def _first_line(error: BaseException) -> str:
    """An error's first line (its type's name when it has no text)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _ort_build() -> str:
    """The installed onnxruntime package, its version, and the CUDA it was built for."""
    name = getattr(ort, "package_name", "") or "onnxruntime"
    cuda = getattr(ort, "cuda_version", "") or ""
    return f"{name} {ort.__version__}" + (f", built for CUDA {cuda}" if cuda else "")


def _cuda_major() -> str:
    """The CUDA major version this onnxruntime build was made for ("" for a CPU build)."""
    return str(getattr(ort, "cuda_version", "") or "").split(".")[0]


def _tensorrt_major() -> str:
    """The TensorRT major version onnxruntime's TensorRT provider library links against ("" unknown)."""
    lib = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_tensorrt.so"
    try:
        found = re.search(rb"libnvinfer\.so\.(\d+)", lib.read_bytes())
    except OSError:
        return ""
    return found.group(1).decode() if found else ""


def _tensorrt_hint() -> str:
    """How to get the TensorRT libraries this onnxruntime build runs with."""
    trt, cuda = _tensorrt_major(), _cuda_major()
    package = f"tensorrt-cu{cuda}" if cuda else "tensorrt"
    wanted = f"'{package}=={trt}.*'" if trt else package
    return (
        f"; install TensorRT{' ' + trt if trt else ''} beside onnxruntime-gpu (pip install {wanted}), or put the "
        "system TensorRT that matches onnxruntime's build on the library path (LD_LIBRARY_PATH)"
    )


def _cuda_hint() -> str:
    """How to get the CUDA libraries this onnxruntime build runs with."""
    cuda = _cuda_major()
    return (
        f"; install the CUDA{' ' + cuda if cuda else ''} and cuDNN libraries onnxruntime-gpu was built for "
        "(pip install 'onnxruntime-gpu[cuda,cudnn]'), or put a system CUDA of that version on the library path"
    )


def tensorrt_cache_root() -> Path:
    """Where TensorRT engines and timing caches of bundles are kept:
    ``$XDG_CACHE_HOME/autocompress/tensorrt`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autocompress" / "tensorrt"


def bundle_cache_key(manifest_path: str | Path) -> str:
    """A folder name for one bundle's TensorRT engines: the start of its manifest's SHA-256 (the
    manifest holds every graph's SHA-256, so a re-exported bundle gets new engines)."""
    return hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest()[:16]


# ONNX TensorProto data types the graph scan looks for
_ONNX_UINT8, _ONNX_INT8, _ONNX_FLOAT16 = 2, 3, 10


def graph_kind(path: str | Path) -> str:
    """``int8`` for a graph holding int8 QDQ nodes (8-bit QuantizeLinear/DequantizeLinear: explicit
    quantization, also the int8 part of an int4/int2 graph) whose float parts are fp32, ``int8-fp16``
    for one whose float parts are fp16 (fp16 initializers: scales, norms, biases; a GPU target's
    export), ``int8-u8`` where any of them has an unsigned 8-bit zero point (the asymmetric form of
    a CPU target's export), ``fp16`` for a graph with fp16 initializers and no int8 QDQ (an fp16
    graph, or a weight-only int4 / int2 graph with fp16 float parts), else ``fp32``. Read from the
    file's protobuf fields directly: the runtime needs no onnx.

    Raises:
        ExportError: the file cannot be read, or is not an ONNX model (empty, truncated, other data).
    """
    ops: list[tuple[str, list[str]]] = []
    types: dict[str, int] = {}
    try:
        data = memoryview(Path(path).read_bytes())
    except OSError as e:
        raise ExportError(f"cannot read graph {path} ({e.strerror or e}); check the path") from None
    try:
        graphs = [value for field, value in _fields(data) if field == 7]  # ModelProto.graph
        if not graphs:
            raise ExportError("no graph in it")
        for graph in graphs:
            _scan_graph(_message(graph), ops, types)
    except ExportError as e:
        raise ExportError(f"{path} is not an ONNX model ({e}); re-export it or give the .onnx file") from None
    except RecursionError:
        raise ExportError(f"{path} is not an ONNX model (subgraphs nested too deep); re-export it") from None
    qdq = [inputs for op, inputs in ops if op in ("QuantizeLinear", "DequantizeLinear")]
    if any(len(inputs) > 2 and types.get(inputs[2]) == _ONNX_UINT8 for inputs in qdq):
        return "int8-u8"  # asymmetric u8 activations: the form a CPU target's export writes
    half = _ONNX_FLOAT16 in types.values()
    for op, inputs in ops:
        # QuantizeLinear: activations rounded to 8 bits (the project stores nothing else this way)
        if op == "QuantizeLinear" or (
            op == "DequantizeLinear" and len(inputs) > 2 and types.get(inputs[2]) == _ONNX_INT8
        ):
            return "int8-fp16" if half else "int8"
    return "fp16" if half else "fp32"


def _scan_graph(data: memoryview, ops: list[tuple[str, list[str]]], types: dict[str, int]) -> None:
    """Collect a GraphProto's nodes (op type, inputs) and initializers (name -> data type),
    subgraphs included.

    Raises:
        ExportError: a field holds a value of the wrong protobuf type.
    """
    for field, value in _fields(data):
        if field == 1:  # node
            op, inputs = "", []
            for f, v in _fields(_message(value)):
                if f == 1:
                    inputs.append(_text(v))
                elif f == 4:
                    op = _text(v)
                elif f == 5:  # attribute: a subgraph (g = 6, graphs = 11) of If/Loop/Scan
                    for af, av in _fields(_message(v)):
                        if af in (6, 11):
                            _scan_graph(_message(av), ops, types)
            ops.append((op, inputs))
        elif field == 5:  # initializer
            name, dtype = "", 0
            for f, v in _fields(_message(value)):
                if f == 8:
                    name = _text(v)
                elif f == 2:
                    if not isinstance(v, int):
                        raise ExportError("a tensor's data type is not a number")
                    dtype = v
            types[name] = dtype


def _message(value: int | memoryview) -> memoryview:
    """``value`` as the bytes of a nested message or string.

    Raises:
        ExportError: it is a number where a message or string belongs.
    """
    if not isinstance(value, memoryview):
        raise ExportError("a number where a message belongs")
    return value


def _text(value: int | memoryview) -> str:
    """A string field's text (undecodable bytes replaced)."""
    return bytes(_message(value)).decode("utf-8", "replace")


def _fields(data: memoryview):  # noqa: ANN202 - yields (field number, int or memoryview)
    """The (field number, value) pairs of one protobuf message: varints as ints, length-delimited
    fields as views; fixed-width fields are skipped.

    Raises:
        ExportError: the bytes are not a protobuf message.
    """
    at, end = 0, len(data)
    while at < end:
        key, at = _varint(data, at)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ExportError("a protobuf field numbered 0")
        if wire == 0:
            value, at = _varint(data, at)
            yield field, value
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > end:
                raise ExportError("a protobuf field runs past the end")
            yield field, data[at : at + size]
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
            if at > end:
                raise ExportError("a protobuf field runs past the end")
        else:
            raise ExportError(f"protobuf wire type {wire}")


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    """The protobuf varint at ``at`` and the offset after it.

    Raises:
        ExportError: it runs past the end or past protobuf's 10 bytes.
    """
    value = shift = 0
    while True:
        if at >= len(data):
            raise ExportError("a protobuf number runs past the end")
        if shift >= 70:
            raise ExportError("a protobuf number longer than 10 bytes")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def tensorrt_options(path: str | Path, cache_dir: str | Path) -> dict[str, object]:
    """TensorRT provider options for one graph: int8 only for a graph of int8 QDQ nodes (explicit
    quantization), fp16 for a graph whose float parts are fp16 (an fp16 graph, and an integer
    graph a GPU target's export gives fp16 float parts: int8 and fp16 both for an ``int8-fp16``
    one; an ``int8`` graph's float parts stay fp32, as exported and scored), engines cached in
    ``cache_dir`` and the timing cache in :func:`tensorrt_cache_root` (shared).

    Raises:
        ExportError: the cache folder cannot be made, or the graph's int8 is the asymmetric u8
            form, which TensorRT does not run as int8.
    """
    kind = graph_kind(path)
    if kind == "int8-u8":
        raise ExportError(
            f"--provider tensorrt: {Path(path).name} holds asymmetric u8 int8 (a CPU target's export), which "
            "TensorRT does not run as int8; export the trial for a GPU target (symmetric s8) or use --provider "
            "auto or cuda"
        )
    cache_dir, root = Path(cache_dir), tensorrt_cache_root()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(
            f"cannot make the TensorRT engine cache folder {cache_dir} ({e.strerror or e}); "
            "point XDG_CACHE_HOME at a writable folder"
        ) from None
    return {
        "trt_int8_enable": kind in ("int8", "int8-fp16"),
        "trt_fp16_enable": kind in ("fp16", "int8-fp16"),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(root),
    }


def _gpu_driver_present() -> bool:
    """False on Linux machines without the NVIDIA driver (saves a noisy failed CUDA load)."""
    if sys.platform.startswith("linux"):
        return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()
    return True


def open_session(
    path: str | Path, providers: list[str], threads: int | None = None, tensorrt_cache: str | Path | None = None
) -> ort.InferenceSession:
    """Open one graph; ``threads`` sets the intra-op thread count (None = onnxruntime's default).

    On the CPU provider an int8 graph's linear layers run as integer kernels (see
    ``_CPU_DISABLED_OPTIMIZERS``), also when CUDA was asked for but does not start here, and an
    int8 graph with fp16 float parts loads (``_FP16_QDQ_DISABLED_OPTIMIZERS``). With
    TensorRT in ``providers`` the graph gets :func:`tensorrt_options`, its engines cached in
    ``tensorrt_cache`` (default: a folder of :func:`tensorrt_cache_root` named after the file's
    path), and the session is refused when TensorRT does not start rather than run elsewhere.

    Raises:
        ExportError: the file is not a graph onnxruntime can load, or TensorRT does not start.
    """
    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    gpu = CUDA in providers or TENSORRT in providers
    try:
        if gpu:
            # A GPU provider that fails to load logs through the default logger, which the
            # session options do not reach; the fallback to CPU is detected below or by the caller.
            ort.set_default_logger_severity(4)
        if TENSORRT in providers:
            return _open_tensorrt(Path(path), providers, options, tensorrt_cache)
        disabled = _cpu_disabled_optimizers(path) if CUDA not in providers else None
        chosen = [(CUDA, dict(_CUDA_OPTIONS)) if p == CUDA else p for p in providers]
        session = ort.InferenceSession(str(path), sess_options=options, providers=chosen, disabled_optimizers=disabled)
        if CUDA in providers and device_of(session) == "cpu":
            # CUDA did not start and onnxruntime fell back to the CPU provider with the graph
            # optimized for CUDA: an int8 GPT step took 323 ms instead of 10 ms. Open it again
            # as a CPU session.
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=[CPU], disabled_optimizers=_cpu_disabled_optimizers(path)
            )
        return session
    except ExportError:
        raise
    except Exception as e:  # onnxruntime raises its own unexported exception types
        raise ExportError(f"onnxruntime cannot load {path}: {e}") from e
    finally:
        if gpu:
            ort.set_default_logger_severity(_DEFAULT_SEVERITY)


def _cpu_disabled_optimizers(path: str | Path) -> list[str]:
    """onnxruntime optimizers left out of a CPU session of the graph at ``path``."""
    try:
        half_qdq = graph_kind(path) == "int8-fp16"
    except ExportError:  # not a model this scan reads: onnxruntime's own load says what is wrong
        half_qdq = False
    return _CPU_DISABLED_OPTIMIZERS + (_FP16_QDQ_DISABLED_OPTIMIZERS if half_qdq else [])


def _open_tensorrt(
    path: Path, providers: list[str], options: ort.SessionOptions, cache: str | Path | None
) -> ort.InferenceSession:
    """A session whose first provider is TensorRT (then CUDA, then CPU as ``providers`` lists).

    Raises:
        ExportError: TensorRT does not start for this graph.
    """
    if cache is None:
        cache = tensorrt_cache_root() / "graphs" / hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    extra = {TENSORRT: tensorrt_options(path, cache), CUDA: dict(_CUDA_OPTIONS)}
    chosen = [(p, extra[p]) if p in extra else p for p in providers]
    try:
        # enable_fallback=0: onnxruntime's Python layer would otherwise print a banner and retry
        # without TensorRT, which is what the user did not ask for.
        session = ort.InferenceSession(str(path), sess_options=options, providers=chosen, enable_fallback=0)
    except Exception as e:  # onnxruntime raises its own unexported exception types
        first = _first_line(e)
        # a library onnxruntime could not load: say what to install; else TensorRT refused this
        # graph (an engine it cannot build), which no install mends
        library = re.search(r"\.so\b|\.dll\b|shared object|install|libnvinfer|LoadLibrary", first, re.IGNORECASE)
        hint = _tensorrt_hint() if library else "; run this bundle with --provider auto or cuda instead"
        raise ExportError(f"--provider tensorrt: TensorRT did not start for {path.name} ({first}){hint}") from e
    if device_of(session) != "tensorrt":
        raise ExportError(
            f"--provider tensorrt: onnxruntime opened {path.name} on {', '.join(session.get_providers())} "
            f"instead of TensorRT{_tensorrt_hint()}"
        )
    return session


def device_of(session: ort.InferenceSession) -> str:
    """``tensorrt`` when the session runs on the TensorRT provider (CUDA taking the nodes it does
    not), ``cuda`` when on the CUDA provider, else ``cpu``."""
    first = session.get_providers()[0]
    return "tensorrt" if first == TENSORRT else "cuda" if first == CUDA else "cpu"


def describe_device(device: str, threads: int | None = None) -> str:
    """A label for the device a figure was measured on: ``cpu: <model>, onnxruntime``, ``cuda`` or ``tensorrt``."""
    if device == "cuda":
        return "cuda: onnxruntime CUDAExecutionProvider"
    if device == "tensorrt":
        return "tensorrt: onnxruntime TensorrtExecutionProvider (CUDA for the nodes TensorRT does not take)"
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


__all__ = [
    "CPU",
    "CUDA",
    "PROVIDER_CHOICES",
    "TENSORRT",
    "available_providers",
    "bundle_cache_key",
    "describe_device",
    "device_of",
    "graph_kind",
    "open_session",
    "tensorrt_cache_root",
    "tensorrt_options",
]
