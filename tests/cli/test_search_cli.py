"""``run_search.py`` / ``autocompress search``: bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "run_search.py"), *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_target_lists_the_valid_ones():
    r = _run("--target", "rtx9090")
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "unknown target 'rtx9090'" in line and "rtx3060" in line and "t4" in line


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--trials", "3"], "the following arguments are required: --target"),
        (["--target", "rtx3060", "--trials", "many"], "argument --trials: expected a whole number, got 'many'"),
        (["--target", "rtx3060", "--trials", "0"], "argument --trials: must be at least 1"),
        (["--target", "rtx3060", "--steps", "-5"], "argument --steps: must be 0 or more"),
        (["--target", "rtx3060", "--timeout", "soon"], "argument --timeout: expected a number of seconds"),
        (["--target", "rtx3060", "--device", "tpu"], "argument --device: invalid choice"),
        (["--target", "rtx3060", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args, expected, capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", *args])
    assert e.value.code == 2
    assert expected in _one_line(capsys.readouterr().err)


def test_missing_files_and_folders_exit_2_with_one_line(tmp_path, capsys):
    gpt = tmp_path / "g.ckpt"
    gpt.write_bytes(b"x")
    cases = [
        (["--gpt", str(tmp_path / "none.ckpt"), "--sovits", str(gpt), "--data", str(tmp_path)], "--gpt"),
        (["--gpt", str(gpt), "--sovits", str(tmp_path / "none.pth"), "--data", str(tmp_path)], "--sovits"),
        (["--gpt", str(gpt), "--sovits", str(gpt), "--data", str(tmp_path / "logs" / "none")], "--data"),
        (["--gpt", str(gpt)], "missing --sovits, --data"),
    ]
    for args, expected in cases:
        assert main(["search", "--target", "rtx3060", *args]) == 2
        assert expected in _one_line(capsys.readouterr().err)


def test_bad_space_and_storage_exit_2_with_one_line(tmp_path, capsys):
    voice = ["--gpt", __file__, "--sovits", __file__, "--data", str(tmp_path)]
    bad = tmp_path / "bad.toml"
    bad.write_text("[space]\nname = 'x'\nsteps = 1\ntrials = 0\n[groups.gpt]\nbits = [9]\n")
    assert main(["search", "--target", "rtx3060", *voice, "--space", str(bad)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{bad}:4: space.trials" in line and f"{bad}:6: groups.gpt.bits" in line
    assert main(["search", "--target", "rtx3060", *voice, "--space", "nope.toml"]) == 2
    assert "shipped spaces: demo.toml, gpt_sovits_v2.toml" in _one_line(capsys.readouterr().err)
    assert main(["search", "--target", "rtx3060", *voice, "--storage", "not a url"]) == 2
    assert "not a database URL" in _one_line(capsys.readouterr().err)
    assert main(["search", "--target", "rtx3060", *voice, "--storage", "foo://u:secret@h/db"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "names no database SQLAlchemy knows ('foo')" in line and "secret" not in line
    assert main(["search", "--target", "rtx3060", *voice, "--study", "bad name!"]) == 2
    assert "--study 'bad name!'" in _one_line(capsys.readouterr().err)


def test_dashboard_serves_only_on_localhost_with_the_same_stores(tmp_path, monkeypatch):
    import optuna_dashboard

    seen = {}
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kw: seen.update(storage=storage, **kw))
    url = f"sqlite:///{tmp_path}/db/x.db"
    assert main(["dashboard", "--storage", url, "--port", "8123"]) == 0
    assert seen["storage"] == url and seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert Path(seen["artifact_store"]._base_path) == tmp_path / "db" / "artifacts"


def test_device_auto_takes_cuda_only_where_torch_sees_it(monkeypatch):
    import torch

    from autocompress.exceptions import ConfigError
    from autocompress.search.config import SearchConfig, resolve

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve(SearchConfig(target="rtx3060")).device == "cpu"  # the default is auto
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve(SearchConfig(target="rtx3060", device="cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve(SearchConfig(target="rtx3060")).device == "cuda"
    assert resolve(SearchConfig(target="rtx3060", device="cpu")).device == "cpu"


def test_a_measured_target_is_measured_on_its_own_kind_of_device(monkeypatch, tmp_path):
    import torch

    from autocompress.exceptions import ConfigError
    from autocompress.search.config import SearchConfig, resolve

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve(SearchConfig(target="cpu")).device == "cpu"  # auto: the CPU, even beside a GPU
    with pytest.raises(ConfigError, match="measured on this machine's CPU"):
        resolve(SearchConfig(target="cpu", device="cuda"))
    gpu = tmp_path / "mygpu.toml"  # a measured GPU target of the user's
    gpu.write_text((Path(__file__).parents[2] / "autocompress/targets/cpu.toml").read_text()
                   .replace('kind = "cpu"', 'kind = "gpu"').replace('name = "cpu"', 'name = "mygpu"'))
    assert resolve(SearchConfig(target=str(gpu))).device == "cuda"
    with pytest.raises(ConfigError, match="needs --device cuda"):
        resolve(SearchConfig(target=str(gpu), device="cpu"))


def test_each_finished_trial_says_what_its_figures_are():
    """In a log, a trial's line stands alone: each of its figures says measured or projected
    (its quality said neither)."""
    from rich.console import Console

    from autocompress.cli.search_cmd import RichReporter
    from types import SimpleNamespace

    from autocompress.search.progress import TrialRow

    console = Console(record=True, width=200, force_terminal=False)
    reporter = RichReporter(console)
    row = TrialRow(number=0, state="COMPLETE", label="p", quality=0.5, latency_ms=771.0, memory_mb=118.5,
                   feasible=True, duration_s=3.0)
    quality = "measured on cpu: x, 2 threads"
    reporter.info = SimpleNamespace(latency_label="measured on cpu: x, 2 threads", memory_label="projected for cpu",
                                    quality_label=quality)
    reporter.trial_finished(row, (row,))
    reporter.info = SimpleNamespace(latency_label="projected for rtx3060", memory_label="projected for rtx3060",
                                    quality_label=quality)
    reporter.trial_finished(row, (row,))
    lines = [line for line in console.export_text().splitlines() if "trial 0:" in line]
    assert "quality 0.500 (measured)  latency 771 ms (measured)  memory 118.5 MiB (projected for cpu)" in lines[0]
    assert "quality 0.500 (measured)  latency 771 ms  memory 118.5 MiB (projected for rtx3060)" in lines[1]


def test_reporter_prints_failure_reasons_and_names_as_text():
    """A failed trial's reason (an exception message) and the study name are never read as rich markup."""
    from rich.console import Console

    from autocompress.cli.search_cmd import RichReporter
    from autocompress.search.progress import SearchSummary, TrialRow

    console = Console(record=True, width=200, force_terminal=False)
    reporter = RichReporter(console)
    failed = TrialRow(number=3, state="FAIL", label="gpt int8", reason="shape [batch, 4] vs [/]")
    reporter.trial_finished(failed, (failed,))
    reporter.search_finished(SearchSummary(study="me[v2]", target="rtx3060", status="finished", rows=(failed,),
                                           export_error="cannot write [bold]x"))
    text = console.export_text()
    assert "shape [batch, 4] vs [/]" in text and "All trials of study me[v2]" in text
    assert "cannot write [bold]x" in text


def test_the_live_view_keeps_the_newest_trials_in_sight():
    """On an 80 x 24 terminal the live table showed trials 0-2 and nothing newer."""
    from rich.console import Console

    from autocompress.cli.search_cmd import LIVE_ROWS, RichReporter
    from autocompress.search.progress import TrialRow

    reporter = RichReporter(Console(width=80, record=True))
    plan = "gpt int4 act fp16 prune 20% width x0.75 | flow int8 act fp16 prune 20% | dec int8 act fp16 prune 20%"
    reporter.rows = tuple(TrialRow(number=i, state="COMPLETE", label=plan, quality=0.5, latency_ms=3.0, memory_mb=9.0,
                                   feasible=True) for i in range(20))
    console = Console(width=80, record=True)
    console.print(reporter._render())
    text = console.export_text()
    assert f"last {LIVE_ROWS} of 20" in text and " 19 " in text and " 13 " not in text
    assert len(text.splitlines()) <= LIVE_ROWS + 8  # one line a trial, plus the frame
