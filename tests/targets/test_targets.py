"""Target files load, carry the datasheet figures the issue fixes, and reject bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from target_helpers import good_target

from autocompress.cli.main import OneLineParser, run_guarded
from autocompress.exceptions import ConfigError
from autocompress.targets import Target, list_targets, load_target, probe_host, target_from_toml

REQUIRED = {"rtx3060", "rtx4090", "t4", "l4", "a100", "jetson-orin-nano", "jetson-nano", "rpi5", "cpu"}


def test_every_required_target_ships_and_loads():
    assert REQUIRED <= set(list_targets())
    for name in list_targets():
        t = load_target(name)
        assert t.name == name
        assert t.can_deploy("fp32", "matmul") and t.can_deploy("fp32", "conv")


def test_rtx3060_figures_match_the_datasheet():
    t = load_target("rtx3060")
    assert t.bandwidth_gbps == 360.0
    assert t.memory_bytes == 12 * 2**30
    assert t.peak_tflops["fp32"] == pytest.approx(12.7)
    assert 50 <= t.peak_tflops["fp16"] <= 52  # dense; the 101 TFLOPS figure is sparse
    assert "fp8" not in t.peak_tflops
    assert not t.can_deploy("fp8", "matmul")
    assert t.can_deploy("int4", "matmul") and not t.can_deploy("int4", "conv")
    assert t.can_deploy("int8", "conv")
    assert "onnxruntime-tensorrt" in t.runtimes


def test_edge_targets():
    nano = load_target("jetson-nano")
    assert nano.bandwidth_gbps == 25.6 and nano.peak_tflops["fp16"] == pytest.approx(0.47, abs=0.01)
    assert not nano.can_deploy("int8", "matmul")  # no tensor cores, no int8 math
    assert load_target("rpi5").bandwidth_gbps == pytest.approx(17.0)
    assert load_target("rpi5").runtimes == ("onnxruntime-cpu",)


def test_hopper_and_more_geforce_targets_carry_dense_rates():
    h100, h200 = load_target("h100"), load_target("h200")
    assert h100.peak_tflops["fp16"] == pytest.approx(1979 / 2, rel=0.01)  # the datasheet's 1979 is sparse
    assert h200.peak_tflops == h100.peak_tflops and h200.bandwidth_gbps > h100.bandwidth_gbps
    assert "int4" not in h100.peak_tflops and h100.can_deploy("fp8", "matmul")  # no int4 tensor math
    r3090, r4060 = load_target("rtx3090"), load_target("rtx4060")
    assert r3090.bandwidth_gbps == 936.0 and "fp8" not in r3090.peak_tflops  # Ampere: no fp8
    assert r3090.peak_tflops["bf16"] == pytest.approx(r3090.peak_tflops["fp16"] / 2)  # GeForce bf16
    assert r4060.peak_tflops["fp8"] == pytest.approx(242 / 2, rel=0.01) and r4060.memory_bytes == 8 * 2**30


def test_blackwell_geforce_targets_match_their_product_pages():
    # NVIDIA gives "AI TOPS" as sparse fp4: four times the dense fp8 rate listed here.
    for name, ai_tops, bandwidth, memory_gb in [("rtx5090", 3352, 1792, 32), ("rtx5080", 1801, 960, 16),
                                                ("rtx5070ti", 1406, 896, 16), ("rtx5070", 988, 672, 12)]:
        t = load_target(name)
        assert t.peak_tflops["fp8"] * 4 == pytest.approx(ai_tops, rel=0.002), name
        assert t.peak_tflops["int8"] == t.peak_tflops["fp8"] == pytest.approx(2 * t.peak_tflops["fp16"], rel=0.002)
        assert t.peak_tflops["bf16"] == pytest.approx(t.peak_tflops["fp16"] / 2, rel=0.002)  # GeForce bf16
        assert t.bandwidth_gbps == bandwidth and t.memory_bytes == memory_gb * 2**30
        assert "int4" not in t.peak_tflops and t.can_deploy("int4", "matmul")  # weight-only int4
    assert load_target("rtx5090").peak_tflops["fp16"] == pytest.approx(838 / 2, rel=0.002)  # 838 is sparse


def test_a_target_file_of_your_own_loads_by_path(tmp_path):
    shipped = (Path(load_target.__code__.co_filename).parent / "rtx3060.toml").read_text()
    own = tmp_path / "my-gpu.toml"
    own.write_text(shipped.replace('name = "rtx3060"', 'name = "my-gpu"').replace("360.0", "448.0"))
    t = load_target(str(own))
    assert t.name == "my-gpu" and t.bandwidth_gbps == 448.0
    assert load_target(own) == t  # a Path works too
    with pytest.raises(ConfigError, match="differs from the file name"):
        wrong = tmp_path / "other.toml"
        wrong.write_text(own.read_text())
        load_target(str(wrong))
    with pytest.raises(ConfigError, match="does not exist"):
        load_target(str(tmp_path / "missing.toml"))


def test_unknown_target_is_one_line_listing_the_valid_names():
    with pytest.raises(ConfigError) as e:
        load_target("rtx9090")
    msg = str(e.value)
    assert "\n" not in msg and "rtx9090" in msg
    for name in REQUIRED:
        assert name in msg


def test_target_is_frozen_and_round_trips():
    t = load_target("t4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.bandwidth_gbps = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        t.peak_tflops["fp32"] = 1.0  # type: ignore[index]
    assert Target.from_dict(t.to_dict()) == t


def test_bad_files_collect_every_problem():
    good = good_target()
    assert target_from_toml(good, "x").bandwidth_bytes_per_s == 100e9
    projection = {**good["projection"], "efficiency": 2}
    bad = {**good, "peak_tflops": {"fp32": 1, "fp7": 2}, "projection": projection}
    with pytest.raises(ConfigError) as e:
        target_from_toml(bad, "x")
    assert "fp7" in str(e.value) and "efficiency" in str(e.value)
    with pytest.raises(ConfigError, match="unknown keys"):
        target_from_toml({**good, "bandwith_gbps": 3}, "x")


def test_cpu_is_measured_and_probe_fills_figures():
    cpu = load_target("cpu")
    assert cpu.measured and not cpu.has_figures
    probed = probe_host(cpu, size_mb=8, repeats=1)
    assert probed.has_figures and probed.memory_bytes > 2**28 and probed.measured
    assert probe_host(load_target("l4")) == load_target("l4")  # datasheet targets stay as they are
    # The figures agree in scale with the same work timed here by numpy (a ratio, not a time).
    import time

    import numpy as np

    src, dst = np.ones(2 * 2**20, np.float32), np.empty(2 * 2**20, np.float32)
    a, b = np.random.rand(512, 512).astype(np.float32), np.random.rand(512, 512).astype(np.float32)
    copy_s = mm_s = float("inf")
    for _ in range(4):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copy_s = min(copy_s, time.perf_counter() - t0)
        t0 = time.perf_counter()
        a @ b
        mm_s = min(mm_s, time.perf_counter() - t0)
    assert 0.05 < probed.bandwidth_gbps / (2 * src.nbytes / copy_s / 1e9) < 20
    assert 0.05 < probed.peak_tflops["fp32"] / (2 * 512**3 / mm_s / 1e12) < 20


def test_targets_command_lists_every_target(capsys):
    from autocompress.cli import targets_cmd

    parser = OneLineParser(prog="autocompress")
    targets_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["targets"])
    assert run_guarded(args.func, args) == 0
    out = capsys.readouterr().out
    assert "rtx3060" in out and "jetson-nano" in out and "measured" in out and "projected" in out
    cells = [line.split("│")[8].split() for line in out.splitlines() if line.count("│") == 12]
    words = {w for cell in cells for w in cell}  # the low-precision column wraps whole words only
    assert {"m:", "c:", "fp16", "int8"} <= words <= {"m:", "c:", "fp16", "bf16", "fp8", "int8", "int4", "-"}
    args = parser.parse_args(["targets", "nope"])
    assert run_guarded(args.func, args) == 2
    assert "expected one of" in capsys.readouterr().err


def test_values_of_the_wrong_type_are_named_not_coerced(tmp_path):
    """A quoted "no" is not false, a string is not a list, and 1e400 is not a memory size."""
    good = good_target()
    cases = {
        "measured must be true or false, got 'no'": {"measured": "no"},
        "memory_gb must be a finite number above 0, got 'lots'": {"memory_gb": "lots"},
        "memory_gb must be a finite number above 0, got inf": {"memory_gb": float("inf")},
        "runtimes must be a non-empty list of strings, got 'onnxruntime-cuda'": {"runtimes": "onnxruntime-cuda"},
        "deployable.matmul must be a non-empty list of strings": {"deployable": {"matmul": "fp32", "conv": ["fp32"]}},
        "peak_tflops.fp32 must be a finite number above 0, got 'x'": {"peak_tflops": {"fp32": "x"}},
        "budget.max_seq_len must be a whole number": {"budget": {**good["budget"], "max_seq_len": 2.7}},
        "budget.rtf must be a finite number above 0, got inf": {"budget": {**good["budget"], "rtf": float("inf")}},
        "description must be a non-empty string": {"description": ["a", "b"]},
    }
    for message, change in cases.items():
        with pytest.raises(ConfigError) as e:
            target_from_toml({**good, **change}, "x")
        assert message in str(e.value), (message, str(e.value))
    (tmp_path / "latin.toml").write_bytes('name = "latin"\ndescription = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_target(str(tmp_path / "latin.toml"))


@pytest.mark.parametrize(
    "written, name",
    [("RTX3060", "rtx3060"), ("rtx-3060", "rtx3060"), ("NVIDIA GeForce RTX 3060", "rtx3060"),
     ("rtx 5070 ti", "rtx5070ti"), ("Jetson Orin Nano", "jetson-orin-nano"), ("Raspberry Pi 5", "rpi5"),
     ("Tesla T4", "t4")],
)
def test_a_shipped_target_is_found_however_its_name_is_written(written, name):
    target = load_target(written)
    assert target.name == name and target == load_target(name)  # the study and the export see one name


@pytest.mark.parametrize("written, suggested", [("3060", "'rtx3060'"), ("orin", "'jetson-agx-orin'")])
def test_an_unknown_target_suggests_the_nearest_names(written, suggested):
    with pytest.raises(ConfigError, match=f"unknown target '{written}'; did you mean {suggested}") as e:
        load_target(written)
    assert "expected one of: a10, a100, a30, a40, cpu" in str(e.value)
    with pytest.raises(ConfigError) as far:
        load_target("gtx1080")
    assert "did you mean" not in str(far.value)


# name, SMs, boost GHz, dense fp16 tensor FLOPs per SM and clock, sparse datasheet figure (None: not
# given as one), bandwidth GB/s, memory GB, bf16 at the full fp16 rate (professional / data-centre)
_ARCH_RATES = [
    ("rtx2060", 30, 1.68, 1024, None, 336, 6, None), ("rtx2070", 36, 1.62, 1024, None, 448, 8, None),
    ("rtx2080", 46, 1.71, 1024, None, 448, 8, None), ("rtx3050", 20, 1.78, 1024, None, 224, 8, False),
    ("rtx3060ti", 38, 1.665, 1024, None, 448, 8, False), ("rtx3070ti", 48, 1.77, 1024, None, 608, 8, False),
    ("rtx3080ti", 80, 1.665, 1024, None, 912, 12, False), ("rtx4060ti", 34, 2.535, 1024, 353, 288, 8, False),
    ("rtx4070ti", 60, 2.61, 1024, 641, 504, 12, False), ("rtx-a4000", 48, 1.56, 1024, 153.4, 448, 16, True),
    ("rtx-a5000", 64, 1.695, 1024, 222.2, 768, 24, True), ("rtx-a6000", 84, 1.80, 1024, 309.7, 768, 48, True),
    ("rtx6000-ada", 142, 2.505, 1024, 1457, 960, 48, True), ("a40", 84, 1.74, 1024, 299.4, 696, 48, True),
]


@pytest.mark.parametrize("name, sms, ghz, per_sm, sparse, bandwidth, memory_gb, full_bf16", _ARCH_RATES)
def test_more_targets_follow_their_architecture_arithmetic(
    name, sms, ghz, per_sm, sparse, bandwidth, memory_gb, full_bf16
):
    t = load_target(name)
    dense_fp16 = sms * per_sm * ghz / 1000
    assert t.peak_tflops["fp16"] == pytest.approx(dense_fp16, rel=0.003)
    assert t.peak_tflops["int8"] == pytest.approx(2 * dense_fp16, rel=0.003)
    if sparse is not None:  # datasheets give sparse tensor rates: fp16 (Ampere) or fp8 (Ada), twice dense
        doubled = 2 * (t.peak_tflops["fp8"] if "fp8" in t.peak_tflops else t.peak_tflops["fp16"])
        assert doubled == pytest.approx(sparse, rel=0.003)
    if full_bf16 is None:  # Turing: no bf16, no fp8
        assert "bf16" not in t.peak_tflops and not t.can_deploy("bf16", "matmul") and "fp8" not in t.peak_tflops
    else:
        ratio = 1 if full_bf16 else 0.5
        assert t.peak_tflops["bf16"] == pytest.approx(ratio * t.peak_tflops["fp16"], rel=0.003)
    assert t.bandwidth_gbps == bandwidth and t.memory_bytes == memory_gb * 2**30
    assert t.memory_budget_bytes < t.memory_bytes and not t.measured


def test_data_centre_a30_matches_its_datasheet():
    a30 = load_target("a30")
    assert a30.peak_tflops["fp16"] == a30.peak_tflops["bf16"] == 165.0  # 330 sparse
    assert a30.peak_tflops["int8"] == 330.0 and a30.bandwidth_gbps == 933.0 and "fp8" not in a30.peak_tflops


@pytest.mark.parametrize(
    "written, name",
    [("RTX A6000", "rtx-a6000"), ("GeForce RTX 3060 Ti", "rtx3060ti"), ("RTX 6000 Ada", "rtx6000-ada"),
     ("rtx 4070 ti", "rtx4070ti"), ("NVIDIA A40", "a40")],
)
def test_the_added_targets_are_found_as_people_write_them(written, name):
    assert load_target(written).name == name


def test_targets_command_shows_bf16_and_fp8_rates_within_120_columns(capsys, monkeypatch):
    """bf16 (half rate on GeForce) and fp8 rates sit on a second line under fp16 and int8."""
    from autocompress.cli import targets_cmd

    monkeypatch.setenv("COLUMNS", "120")
    parser = OneLineParser(prog="autocompress")
    targets_cmd.register(parser.add_subparsers())

    def peak_cells(name: str) -> list[list[str]]:
        args = parser.parse_args(["targets", name])
        assert run_guarded(args.func, args) == 0
        rows = [line.split("│") for line in capsys.readouterr().out.splitlines() if line.count("│") == 12]
        return [[row[c].strip() for row in rows if row[c].strip()] for c in (5, 6)]  # fp16/bf16, int8/fp8

    assert peak_cells("rtx3060") == [["51.2", "25.6"], ["102.4", "-"]]
    assert peak_cells("h100") == [["989.5", "989.5"], ["1979", "1979"]]
    assert peak_cells("jetson-nano") == [["0.472", "-"], ["-"]]
    args = parser.parse_args(["targets"])
    assert run_guarded(args.func, args) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 120 and "bf16 under fp16, fp8 under int8" in out
