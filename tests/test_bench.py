"""The benchmarks in bench/: what they time and sum, without running the heavy parts."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_export_bench_times_a_bundles_decode_steps_against_the_prefill_of_the_same_run(monkeypatch):
    """A prefill that is slower in one run than in another must not make decode steps negative."""
    bench = _load("export_bench")
    clock = _Clock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    prefill_times = itertools.cycle([0.080, 0.030])  # the machine's load changes between runs
    step_s = 0.002

    class Loop:
        def _prefill(self, *args):  # noqa: ANN002
            clock.now += next(prefill_times)

    class Runner:
        gpt = Loop()

        def generate(self, item, sampling, max_new_tokens):  # noqa: ANN001
            self.gpt._prefill()
            clock.now += step_s * (max_new_tokens - 1)  # one decode step per code after the first
            return SimpleNamespace(tokens=np.zeros(max_new_tokens, dtype=np.int64))

    subject = bench._Bundle(Path("unused"), threads=1, tokens=5, runner=Runner())
    for expected_prefill in (0.080, 0.030, 0.080):
        prefill, per_token = subject.gpt()
        assert prefill == pytest.approx(expected_prefill)
        assert per_token == pytest.approx(step_s)


def test_export_bench_skip_build_without_out_is_refused_in_one_line(capsys):
    bench = _load("export_bench")
    with pytest.raises(SystemExit) as e:
        bench.main(["--skip-build"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--out" in err[-1] and "--skip-build" in err[-1]


def test_score_bench_totals_what_a_search_trial_scores():
    """The total row sums the metrics a trial computes per sentence: no DNSMOS, MCD included."""
    from autocompress.score.fidelity import fidelity_metrics

    bench = _load("score_bench")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000).astype(np.float32)
    fidelity = {m.name for m in fidelity_metrics(x, 0.9 * x, 16000)}
    # the search's teacher reference holds DistillMOS and speaker vectors (search/cache.py)
    expected = fidelity | {"distillmos", "speaker_cos"}
    assert {row.split(" (")[0] for row in bench.TRIAL_ROWS} == expected
    assert len(bench.TRIAL_ROWS) == len(expected)


def test_score_bench_ratio_never_prints_a_cheap_step_as_zero():
    bench = _load("score_bench")
    assert bench.ratio(0.18) == "0.18"
    assert bench.ratio(0.004) == "0.004"
    assert bench.ratio(2.345) == "2.3"
    assert bench.ratio(123.4) == "123"
