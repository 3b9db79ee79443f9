"""A target file of one's own: each mistake in it is one line that says what to change."""

from __future__ import annotations

import pytest
from target_helpers import good_target

from autocompress.exceptions import ConfigError
from autocompress.targets import target_from_toml


@pytest.mark.parametrize("section", ["budget", "projection"])
@pytest.mark.parametrize("value", [3, "fast", ["vram_gb"]])
def test_a_section_that_is_not_a_table_is_named_not_a_crash(section, value):
    with pytest.raises(ConfigError) as e:
        target_from_toml({**good_target(), section: value}, "my-gpu")
    msg = str(e.value)
    assert "\n" not in msg and f"[{section}] must be a table" in msg and "my-gpu.toml" in msg


@pytest.mark.parametrize("key, named", [
    ("memory_gb", "memory_gb"), ("bandwidth_gbps", "bandwidth_gbps"), ("peak_tflops", "peak_tflops.fp32"),
])
def test_a_datasheet_figure_left_out_is_reported_missing(key, named):
    data = {k: v for k, v in good_target().items() if k != key}
    with pytest.raises(ConfigError) as e:
        target_from_toml(data, "my-gpu")
    msg = str(e.value)
    assert "\n" not in msg and f"missing keys ['{named}']" in msg and "measured = true" in msg
    assert "must be > 0" not in msg  # not a range complaint about a value nobody wrote


def test_a_measured_target_may_leave_its_figures_out():
    data = {k: v for k, v in good_target().items() if k not in ("memory_gb", "bandwidth_gbps", "peak_tflops")}
    t = target_from_toml({**data, "kind": "cpu", "measured": True, "default_precision": "fp32"}, "here")
    assert t.measured and not t.has_figures


def test_a_name_that_differs_from_the_file_stem_says_how_to_fix_it():
    with pytest.raises(ConfigError) as e:
        target_from_toml({**good_target(), "name": "rtx3060"}, "my-gpu")
    msg = str(e.value)
    assert "\n" not in msg and "name = 'my-gpu'" in msg and "rename the file" in msg


def test_a_budget_larger_than_the_device_memory_is_refused():
    with pytest.raises(ConfigError) as e:
        target_from_toml({**good_target(), "budget": {**good_target()["budget"], "vram_gb": 9}}, "my-gpu")
    msg = str(e.value)
    assert "\n" not in msg and "budget.vram_gb (9) is more than the device's memory_gb (8)" in msg
    assert target_from_toml({**good_target(), "budget": {**good_target()["budget"], "vram_gb": 8}}, "my-gpu").memory_budget_bytes == 8 * 2**30


def test_a_measured_gpu_is_not_probed_with_this_machines_cpu():
    """probe_host measures the CPU: a measured GPU target would get the CPU's RAM, bandwidth and
    throughput under the GPU's name, and projections from them."""
    from autocompress.targets import probe_host

    data = {k: v for k, v in good_target().items() if k not in ("memory_gb", "bandwidth_gbps", "peak_tflops")}
    gpu = target_from_toml({**data, "measured": True}, "my-gpu")
    assert gpu.measured and gpu.kind == "gpu"  # timed on this machine's GPU by a search with --device cuda
    with pytest.raises(ConfigError) as e:
        probe_host(gpu, size_mb=1, repeats=1)
    msg = str(e.value)
    assert "\n" not in msg and "'my-gpu' is a measured gpu" in msg and "measured = false" in msg
