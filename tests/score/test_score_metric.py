"""Metric: labels, validation, and the JSON round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch

from autocompress.exceptions import ConfigError
from autocompress.score import Metric, format_metric, host_device, measured, projected


def test_measured_and_projected_are_labelled_differently():
    m = measured("gpt_ms_per_token", 12.345, "ms", device="cpu: test, 2 threads")
    p = projected("gpt_ms_per_token", 0.41, "ms", "rtx3060")
    assert format_metric(m) == "12.3 ms (measured on cpu: test, 2 threads)"
    assert format_metric(p) == "0.41 ms (projected for rtx3060)"
    assert format_metric(p, with_name=True).startswith("gpt_ms_per_token: ")
    assert m.is_measured and not p.is_measured
    assert format_metric(projected("memory_bytes", 3 * 2**30, "bytes", "t4", "int4 conv -> int8")) == (
        "3.00 GiB (projected for t4) [int4 conv -> int8]"
    )


def test_round_trip_through_json_including_nan():
    nan = measured("gpu_process_bytes", math.nan, "bytes", "cuda: none")
    for m in (projected("rtf", 0.25, "x", "l4", "note"), nan):
        data = json.loads(json.dumps(m.to_dict()))
        back = Metric.from_dict(data)
        assert back.name == m.name and back.kind == m.kind and back.device == m.device and back.note == m.note
        assert (math.isnan(back.value) and math.isnan(m.value)) or back.value == m.value
    minimal = {"name": "a", "value": 1, "unit": "", "kind": "measured", "device": "d"}
    assert Metric.from_dict(minimal).note == ""


def test_invalid_metrics_are_rejected():
    with pytest.raises(ConfigError):
        Metric("x", 1.0, "ms", "estimated", "cpu")
    with pytest.raises(ConfigError):
        Metric("x", 1.0, "ms", "measured", "")
    with pytest.raises(ConfigError, match="unknown fields"):
        Metric.from_dict({"name": "a", "value": 1, "unit": "", "kind": "measured", "device": "d", "extra": 1})


def test_host_device_names_the_cpu_and_threads():
    d = host_device()
    n = torch.get_num_threads()
    assert d.startswith("cpu: ") and d.endswith(f", {n} thread{'' if n == 1 else 's'}")
    assert measured("x", 1, "").device == d
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if before != 1 else 2)
        n = torch.get_num_threads()
        assert host_device().endswith(f", {n} thread{'' if n == 1 else 's'}")  # follows torch's setting
    finally:
        torch.set_num_threads(before)
