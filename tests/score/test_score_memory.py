"""Memory: NVML fallback, fresh-subprocess peak, projected components."""

from __future__ import annotations

import math
import os
import sys
import types

import pytest

from autocompress.exceptions import ScoringError
from torch import nn

from autocompress.score import (
    deployed_weight_bytes,
    gpu_memory_metrics,
    kv_cache_bytes,
    nvml_process_bytes,
    peak_rss_subprocess,
    project_memory,
)
from autocompress.targets import load_target

from _score_alloc import allocate, fail


def test_nvml_absent_gives_a_labelled_fallback_not_a_crash(monkeypatch):
    import pynvml

    def fail() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    value, reason = nvml_process_bytes()
    assert math.isnan(value) and reason.startswith("NVML unavailable")
    metrics = {m.name: m for m in gpu_memory_metrics(load_target("rtx3060"))}
    process = metrics["gpu_process_bytes"]
    assert process.kind == "measured" and "NVML unavailable" in process.note
    assert "gpu_peak_allocated_bytes" in metrics


def test_nvml_process_memory_is_read_for_this_pid(monkeypatch):
    me = os.getpid()
    proc = types.SimpleNamespace
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetComputeRunningProcesses=lambda h: [
            proc(pid=me + 1, usedGpuMemory=1), proc(pid=me, usedGpuMemory=123 * 2**20)
        ],
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert nvml_process_bytes() == (123 * 2**20, "")
    value, reason = nvml_process_bytes(pid=me + 7)
    assert math.isnan(value) and "lists no memory" in reason


def _fake_nvml(me: int) -> types.SimpleNamespace:
    """An NVML with three GPUs where only NVML's GPU 2 (UUID GPU-c) runs this process."""
    proc = types.SimpleNamespace
    uuids = {"GPU-a": 0, "GPU-b": 1, "GPU-c": 2}
    return types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetHandleByUUID=lambda u: uuids[u],
        nvmlDeviceGetComputeRunningProcesses=lambda h: [proc(pid=me, usedGpuMemory=5 * 2**20)] if h == 2 else [],
    )


def test_nvml_finds_the_cuda_device_by_uuid_not_by_cuda_index(monkeypatch):
    me = os.getpid()
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(me))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    monkeypatch.setattr("autocompress.score.memory._cuda_uuid", lambda i: "GPU-c" if i == 0 else None)
    # cuda:0 is NVML's GPU 2 here: indexing NVML with 0 would read another GPU
    assert nvml_process_bytes(device_index=0) == (5 * 2**20, "")


def test_nvml_without_uuid_maps_cuda_visible_devices(monkeypatch):
    me = os.getpid()
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(me))
    monkeypatch.setattr("autocompress.score.memory._cuda_uuid", lambda i: None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")
    assert nvml_process_bytes(device_index=1) == (5 * 2**20, "")
    value, reason = nvml_process_bytes(device_index=0)
    assert math.isnan(value) and "GPU 1" in reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-c")
    assert nvml_process_bytes(device_index=0) == (5 * 2**20, "")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert nvml_process_bytes(device_index=2) == (5 * 2**20, "")


def test_peak_rss_of_a_fresh_subprocess_sees_the_allocation():
    small = {m.name: m for m in peak_rss_subprocess(allocate, 8)}
    big = {m.name: m for m in peak_rss_subprocess(allocate, 200)}
    assert big["peak_rss_delta_bytes"].value >= 200 * 2**20
    assert big["peak_rss_delta_bytes"].value - small["peak_rss_delta_bytes"].value >= 150 * 2**20
    assert big["peak_rss_bytes"].value >= big["peak_rss_delta_bytes"].value
    assert big["peak_rss_bytes"].kind == "measured" and "fresh subprocess" in big["peak_rss_bytes"].note


def test_a_failing_or_unserialisable_workload_is_a_scoring_error():
    with pytest.raises(ScoringError, match="ValueError: boom"):
        peak_rss_subprocess(fail, "boom")
    with pytest.raises(ScoringError, match="JSON"):
        peak_rss_subprocess(allocate, object())


def test_deployed_weight_bytes_follow_the_plan():
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(32, 8, 3))
    model = nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 32), conv)
    rtx = load_target("rtx3060")
    emb, lin_w, lin_b, conv_w, conv_b = 100 * 16, 16 * 32, 32, 8 * 32 * 3, 8
    fp16, _ = deployed_weight_bytes(model, rtx)
    assert fp16 == 2 * (emb + lin_w + lin_b + conv_w + conv_b)
    int8, _ = deployed_weight_bytes(model, rtx, {"": 8})
    assert int8 == 2 * (emb + lin_b + conv_b) + lin_w + conv_w  # the quantizable part halves
    int4, notes = deployed_weight_bytes(model, rtx, {"": 4})
    # no int4 convolution on an RTX 3060; int4 weights carry an fp16 scale per 32
    assert int4 == pytest.approx(2 * (emb + lin_b + conv_b) + lin_w * (0.5 + 2 / 32) + conv_w)
    assert any("conv int4 not deployable" in n for n in notes)
    cpu32, _ = deployed_weight_bytes(model, load_target("rpi5"))
    assert cpu32 == 2 * fp16


def test_memory_projection_adds_its_components():
    rtx = load_target("rtx3060")
    kv = kv_cache_bytes([512] * 24, rtx.max_seq_len, 2)
    assert kv == 2 * 24 * 512 * 2048 * 2  # 96 MiB: the field notes' 48 KB per token
    proj = project_memory(rtx, weight_bytes=1e8, kv_bytes=kv, activation_bytes=1e6)
    assert proj.total_bytes == pytest.approx(rtx.context_bytes + 1e8 + kv + 1e6)
    metrics = {m.name: m for m in proj.metrics()}
    assert metrics["memory_bytes"].kind == "projected" and metrics["memory_bytes"].device == "rtx3060"
    assert metrics["memory_context_bytes"].value == 350 * 2**20


@pytest.mark.parametrize("nvml", [True, False])
def test_gpu_memory_is_read_in_a_fresh_process_of_its_own(tmp_path, nvml):
    """A CUDA search measured GPU memory in its own process: the teacher and its caches counted."""
    import os

    from _score_alloc import gpu_reading

    from autocompress.score.memory import gpu_memory_subprocess
    from autocompress.targets import load_target

    pid_file = tmp_path / "pid"
    target = load_target("rtx3060")
    process, peak = gpu_memory_subprocess(gpu_reading, str(pid_file), nvml, target=target)
    assert int(pid_file.read_text()) != os.getpid()  # the workload ran in another process
    assert (process.name, peak.name) == ("gpu_process_bytes", "gpu_peak_allocated_bytes")
    assert process.kind == peak.kind == "measured" and process.device == "cuda:0 (stand-in)"
    assert peak.value == 2e8 and "fresh subprocess" in peak.note
    if nvml:
        assert process.value == 7e8
    else:
        assert process.value == 3e8 + target.context_bytes and "fallback" in process.note
