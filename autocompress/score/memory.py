"""Memory: measured where the model runs, and always projected for the target.

Measured:
- GPU: NVML's per-process used memory (the whole footprint, CUDA context included) and
  ``torch.cuda.max_memory_allocated`` (tensors only), of this process
  (:func:`gpu_memory_metrics`) or of a fresh one that runs the workload alone
  (:func:`gpu_memory_subprocess`, what a trial reports). Without NVML (no driver, no GPU, as on the
  development machine) the process figure falls back to ``torch.cuda.memory_reserved`` plus the
  target's context constant, or to NaN on a machine without CUDA, and the metric's note says so:
  no crash.
- CPU: the peak resident set of a fresh subprocess that runs the workload (``VmHWM`` reset
  through ``/proc/self/clear_refs`` just before the call), reported in total and above the
  process's resident set before the call.

Projected (:func:`project_memory`), for any target:

    context + weights at the plan's deployed precisions + KV cache at the target's
    max_seq_len + activation peak from the live-tensor tracker

The context term is the target file's ``projection.context_mb``: on GPUs the CUDA context with
lazy module loading plus cuBLAS/cuDNN handles (about 250-500 MiB depending on the card; 350 MiB
for an RTX 3060), on CPUs onnxruntime's session overhead (60 MiB).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from autocompress.exceptions import ScoringError
from autocompress.score.metric import Metric, host_device, measured, projected
from autocompress.score.precision import ActPrecision
from autocompress.score.precision import WeightBits
from autocompress.score.precision import activation_precision
from autocompress.score.precision import deploy_weight
from autocompress.score.precision import weight_bits_for
from autocompress.targets import PRECISION_BITS, Target

# --------------------------------------------------------------------------- projected


@dataclass(frozen=True)
class MemoryProjection:
    """Projected memory of a deployed model on a target, by component (bytes)."""

    target: str
    context_bytes: float
    weight_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    notes: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> float:
        return self.context_bytes + self.weight_bytes + self.kv_cache_bytes + self.activation_bytes

    def metrics(self, prefix: str = "memory") -> list[Metric]:
        """``<prefix>_bytes`` (the total) and one metric per component, all projected."""
        note = "; ".join(self.notes)
        return [
            projected(f"{prefix}_bytes", self.total_bytes, "bytes", self.target, note),
            projected(f"{prefix}_context_bytes", self.context_bytes, "bytes", self.target),
            projected(f"{prefix}_weight_bytes", self.weight_bytes, "bytes", self.target, note),
            projected(f"{prefix}_kv_cache_bytes", self.kv_cache_bytes, "bytes", self.target),
            projected(f"{prefix}_activation_bytes", self.activation_bytes, "bytes", self.target),
        ]


def deployed_weight_bytes(
    module: Any,
    target: Target,
    weight_bits: WeightBits | None = None,
    act_precision: ActPrecision = None,
    prefix: str = "",
) -> tuple[float, tuple[str, ...]]:
    """Bytes of ``module``'s parameters as shipped on ``target``, and any precision notes.

    Weights of linear layers and convolutions (>= 2-D, not embedding tables) take the plan's
    bits after :func:`~autocompress.score.precision.deploy_weight`; everything else is stored
    at the activation precision. A parametrized weight (weight norm) counts once, at the size
    of the weight it folds into.
    """
    from torch import nn

    pre = f"{prefix}." if prefix else ""
    total = 0.0
    notes: dict[str, None] = {}
    for name, mod in module.named_modules():
        fqn = pre + name if name else prefix
        act, note = activation_precision(fqn, act_precision, target)
        if note:
            notes[note] = None
        tensors = [(f"{fqn}.{n}" if fqn else n, p) for n, p in mod.named_parameters(recurse=False)]
        if _is_parametrization_list(mod):
            continue  # counted by the parametrized module below
        parametrizations = getattr(mod, "parametrizations", None)
        if parametrizations is not None:
            for tensor_name, plist in parametrizations.items():
                folded = max((p for p in plist.parameters(recurse=False)), key=lambda p: p.numel())
                tensors.append((f"{fqn}.{tensor_name}" if fqn else tensor_name, folded))
        for pname, p in tensors:
            quantizable = p.dim() >= 2 and not isinstance(mod, nn.Embedding)
            if quantizable:
                kind = "conv" if p.dim() >= 3 else "matmul"
                plan_kind = "conv_transpose" if isinstance(mod, nn.modules.conv._ConvTransposeNd) else kind
                d = deploy_weight(weight_bits_for(pname, plan_kind, weight_bits), kind, act, target)
                if d.note:
                    notes[d.note] = None
                total += p.numel() * d.weight_bytes_per_element
            else:
                total += p.numel() * PRECISION_BITS[act] / 8
    return total, tuple(notes)


def _is_parametrization_list(mod: Any) -> bool:
    return type(mod).__name__ == "ParametrizationList"


def kv_cache_bytes(layer_widths: list[int], seq_len: int, bytes_per_element: float) -> float:
    """Keys and values of every layer: ``2 * sum(width) * seq_len * bytes`` (batch 1)."""
    return 2.0 * sum(layer_widths) * seq_len * bytes_per_element


def project_memory(
    target: Target,
    weight_bytes: float,
    kv_bytes: float = 0.0,
    activation_bytes: float = 0.0,
    notes: tuple[str, ...] = (),
) -> MemoryProjection:
    """Combine the components with the target's context constant."""
    context = float(target.context_bytes)
    return MemoryProjection(target.name, context, weight_bytes, kv_bytes, activation_bytes, notes)


# --------------------------------------------------------------------------- measured: GPU


def _cuda_uuid(cuda_index: int) -> str | None:
    """NVML's name (``GPU-<uuid>``) of CUDA device ``cuda_index`` as this process sees it, or None."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        uuid = getattr(torch.cuda.get_device_properties(cuda_index), "uuid", None)
    except Exception:  # noqa: BLE001  (no driver, index out of range)
        return None
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def _nvml_handle(pynvml: Any, cuda_index: int) -> tuple[Any, str]:
    """NVML's handle for CUDA device ``cuda_index``, and how it was found.

    CUDA's indices are not NVML's: ``CUDA_VISIBLE_DEVICES`` renumbers the visible devices and
    CUDA orders them fastest first, NVML by PCI bus. The device's UUID names it in both; without
    one, a numeric ``CUDA_VISIBLE_DEVICES`` entry is used, then the index itself.
    """
    uuid = _cuda_uuid(cuda_index)
    if uuid is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(uuid), uuid
        except Exception:  # noqa: BLE001  (MIG names or an old driver: fall back to indices)
            pass
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if cuda_index < len(visible):
        entry = visible[cuda_index]
        if entry.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(entry)), f"GPU {entry}"
        if entry.startswith(("GPU-", "MIG-")):
            return pynvml.nvmlDeviceGetHandleByUUID(entry), entry
    return pynvml.nvmlDeviceGetHandleByIndex(cuda_index), f"GPU {cuda_index}"


def nvml_process_bytes(pid: int | None = None, device_index: int = 0) -> tuple[float, str]:
    """GPU memory NVML reports for process ``pid`` (default: this one) on CUDA device ``device_index``
    (numbered as torch numbers it in this process).

    Returns:
        (bytes, "") or (NaN, reason) when NVML or the driver is missing, or the process is
        not listed. Never raises.
    """
    pid = os.getpid() if pid is None else pid
    try:
        import pynvml
    except ImportError as e:  # nvidia-ml-py not installed
        return math.nan, f"NVML unavailable: {e}"
    try:
        pynvml.nvmlInit()
    except Exception as e:  # noqa: BLE001  (pynvml raises its own NVMLError subclasses)
        return math.nan, f"NVML unavailable: {type(e).__name__}: {e}"
    try:
        handle, name = _nvml_handle(pynvml, device_index)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == pid and proc.usedGpuMemory is not None:
                return float(proc.usedGpuMemory), ""
        return math.nan, f"NVML lists no memory for pid {pid} on {name}"
    except Exception as e:  # noqa: BLE001
        return math.nan, f"NVML query failed: {type(e).__name__}: {e}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def gpu_memory_metrics(target: Target | None = None, device: Any = None) -> list[Metric]:
    """Memory of this process on the GPU, read after a workload ran.

    Returns ``gpu_process_bytes`` (NVML; fallback: torch reserved + the target's context
    constant, or NaN without CUDA, with a note) and ``gpu_peak_allocated_bytes`` (torch).
    Call ``torch.cuda.reset_peak_memory_stats()`` before the workload.
    """
    return _gpu_memory(read_gpu_memory(device), target)


def read_gpu_memory(device: Any = None) -> dict[str, Any]:
    """What this process holds on the GPU ``device`` (default: CUDA's current one), as plain values:
    NVML's figure or why there is none, torch's peak allocation and reservation (NaN / None
    without CUDA)."""
    import torch

    has_cuda = torch.cuda.is_available()
    dev = torch.device(device if device is not None else ("cuda" if has_cuda else "cpu"))
    if has_cuda and dev.type == "cuda":
        torch.cuda.synchronize(dev)
    value, reason = nvml_process_bytes(device_index=(dev.index or 0) if dev.type == "cuda" else 0)
    return {
        "device": host_device(dev) if has_cuda else "cuda: none on this machine",
        "nvml_bytes": value if reason == "" else None,
        "nvml_reason": reason,
        "peak_allocated": float(torch.cuda.max_memory_allocated(dev)) if has_cuda else math.nan,
        "reserved": float(torch.cuda.memory_reserved(dev)) if has_cuda else None,
    }


def _gpu_memory(seen: dict[str, Any], target: Target | None, note: str = "") -> list[Metric]:
    """The two GPU memory metrics from a :func:`read_gpu_memory` record; ``note`` says where it was read."""

    def noted(*parts: str) -> str:
        return "; ".join(p for p in (note, *parts) if p)

    where, reason = seen["device"], seen["nvml_reason"]
    if reason == "":
        process = measured("gpu_process_bytes", seen["nvml_bytes"], "bytes", where, noted())
    elif seen["reserved"] is not None:
        context = target.context_bytes if target is not None else 0
        fallback = seen["reserved"] + context
        process = measured("gpu_process_bytes", fallback, "bytes", where,
                           noted(f"{reason}; fallback: torch reserved + {context / 2**20:.0f} MiB context constant"))
    else:
        process = measured("gpu_process_bytes", math.nan, "bytes", where, noted(f"{reason}; no CUDA device"))
    cuda = "" if seen["reserved"] is not None else "no CUDA device"
    return [process, measured("gpu_peak_allocated_bytes", seen["peak_allocated"], "bytes", where, noted(cuda))]


# --------------------------------------------------------------------------- measured: CPU


def peak_rss_subprocess(fn: Callable[..., Any], *args: Any, timeout_s: float = 600.0) -> list[Metric]:
    """Run ``fn(*args)`` in a fresh Python process and report its peak memory.

    ``fn`` must be a module-level function (it is imported by name in the child) and ``args``
    JSON-serialisable (configs as dicts, sizes as numbers). The child is a new interpreter
    started with ``sys.executable`` and this process's ``sys.path``: nothing is inherited
    or re-run from the parent's main module, and no pickle is involved.

    Returns:
        ``peak_rss_bytes``: the child's peak resident set (whole process, interpreter and
        libraries included), and ``peak_rss_delta_bytes``: that peak minus the resident set
        just before ``fn`` ran (its imports done). Both measured on this machine's CPU.

    Raises:
        ScoringError: the child failed, was killed or timed out.
    """
    result = run_in_subprocess(fn, *args, timeout_s=timeout_s)
    before, peak, how = result["before"], result["peak"], result["how"]
    device = host_device()
    return [
        measured("peak_rss_bytes", peak, "bytes", device, f"fresh subprocess, {how}"),
        measured("peak_rss_delta_bytes", peak - before, "bytes", device, f"fresh subprocess, {how}"),
    ]


def gpu_memory_subprocess(
    fn: Callable[..., dict[str, Any]], *args: Any, target: Target | None = None, timeout_s: float = 600.0
) -> list[Metric]:
    """GPU memory of ``fn(*args)`` run alone in a fresh process (rules of :func:`peak_rss_subprocess`).

    ``fn`` runs the workload on its GPU and returns what it read there (:func:`read_gpu_memory`):
    this process's own tensors (a search's teacher, its caches) are not counted.

    Returns:
        ``gpu_process_bytes`` and ``gpu_peak_allocated_bytes`` as :func:`gpu_memory_metrics`
        labels them, noted as a fresh subprocess.

    Raises:
        ScoringError: the child failed, was killed or timed out.
    """
    seen = run_in_subprocess(fn, *args, timeout_s=timeout_s)["returned"]
    return _gpu_memory(seen, target, "fresh subprocess: the workload alone, with its own CUDA context")


def run_in_subprocess(fn: Callable[..., Any], *args: Any, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh interpreter; return its result record (``before`` and ``peak``
    resident bytes, ``how`` they were read, ``returned``: ``fn``'s JSON-serialisable return value)."""
    with tempfile.TemporaryDirectory(prefix="autocompress-rss-") as tmp:
        result_path = os.path.join(tmp, "result.json")
        request = {
            "module": fn.__module__,
            "name": fn.__qualname__,
            "args": list(args),
            "sys_path": [p for p in sys.path if p],
            "result": result_path,
        }
        try:
            proc = subprocess.run(
                [sys.executable, "-c", "from autocompress.score.memory import _rss_child; _rss_child()"],
                input=json.dumps(request), capture_output=True, text=True, timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as e:
            raise ScoringError(f"peak-memory subprocess gave no result within {timeout_s:.0f} s") from e
        except TypeError as e:
            raise ScoringError(f"peak_rss_subprocess: arguments must be JSON-serialisable ({e})") from e
        if not os.path.exists(result_path):
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            raise ScoringError(f"peak-memory subprocess died without a result: {tail[0]}")
        with open(result_path, encoding="utf-8") as f:
            result = json.load(f)
    if result["status"] != "ok":
        raise ScoringError(f"peak-memory subprocess failed: {result['error']}")
    return result


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_child() -> None:
    """Child side of :func:`peak_rss_subprocess`: read the request on stdin, write the result file."""
    request = json.loads(sys.stdin.read())
    sys.path[:] = request["sys_path"]
    out: dict[str, Any] = {"status": "error", "error": "not run"}
    try:
        import importlib

        fn = importlib.import_module(request["module"])
        for part in request["name"].split("."):
            fn = getattr(fn, part)
        how = "VmHWM reset before the call"
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            how = "ru_maxrss (not reset: includes start-up)"
        before = _status_kib("VmRSS")
        returned = fn(*request["args"])
        peak = _status_kib("VmHWM") if how.startswith("VmHWM") else None
        if peak is None or before is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
            before = before or 0
        out = {"status": "ok", "before": before * 1024.0, "peak": peak * 1024.0, "how": how, "returned": returned}
    except BaseException as e:  # noqa: BLE001  (report everything to the parent)
        out = {"status": "error", "error": f"{type(e).__name__}: {e}"}
    with open(request["result"], "w", encoding="utf-8") as f:
        json.dump(out, f)
