"""What a search report costs for a large study, against a small one reported in the same run.

Builds synthetic studies (SQLite in a temporary folder) shaped like a search's: three objectives
(quality, latency_ms, memory_mb), a categorical parameter per module setting, the user attributes
a trial records (plan, metrics, fine-tune curves, notes, feasibility) and its constraints, a few
baselines, failed and pruned trials. Then times the report (``load_report_data`` and
``write_report``: the HTML and a PNG per plot) of each, and prints the large one's time as a
multiple of the baseline study's. Seconds are printed too, but only the ratio compares between
machines.

    python bench/report_bench.py [--trials 3000] [--baseline 300] [--repeats 3] [--profile]

``--profile`` prints the top of a cProfile of one report of the large study.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

GROUPS = ("gpt.ar", "gpt.emb", "sovits.enc_p", "sovits.flow", "sovits.dec", "sovits.ref_enc")
CHOICES = {"prune": (0.0, 0.1, 0.2, 0.3, 0.5), "bits": (32, 16, 8, 6, 4), "width": (1.0, 0.75, 0.5)}


def _trial(rng: random.Random, number: int) -> optuna.trial.FrozenTrial:
    """One trial as a search records it: values, params, user attributes and constraints."""
    dists, params = {}, {}
    for g in GROUPS:
        for dim, choices in CHOICES.items():
            name = f"{g}.{dim}"
            dists[name] = CategoricalDistribution(choices)
            params[name] = rng.choice(choices)
    squeeze = sum(1.0 - params[f"{g}.bits"] / 32 + params[f"{g}.prune"] for g in GROUPS) / len(GROUPS)
    quality = max(0.0, min(1.0, 0.97 - 0.6 * squeeze ** 2 + rng.gauss(0, 0.05)))
    latency = 40.0 * (1.05 - 0.6 * squeeze) * rng.uniform(0.9, 1.1)
    memory = 900.0 * (1.05 - 0.7 * squeeze) * rng.uniform(0.9, 1.1)
    feasible = quality >= 0.5 and memory <= 800
    summary = ", ".join(f"{g} int{params[g + '.bits']} prune {params[g + '.prune']:.0%}" for g in GROUPS[:3])
    metrics = [
        {"name": n, "value": v, "unit": u, "kind": "measured", "device": "cpu"}
        for n, v, u in (("distillmos", 3.7 * quality, ""), ("speaker_cos", 0.7 + 0.3 * quality, ""),
                        ("mcd_db", 8.0 * (1 - quality), "dB"), ("stoi", 0.6 + 0.4 * quality, ""),
                        ("log_mel_l1", 1 - quality, ""), ("mrstft", 2 * (1 - quality), ""))
    ] + [{"name": "latency_ms", "value": latency, "unit": "ms", "kind": "projected", "device": "rtx3060"},
         {"name": "memory_mb", "value": memory, "unit": "MiB", "kind": "projected", "device": "rtx3060"}]
    curve = [[step, 1.0 / (1 + step / 50)] for step in range(0, 400, 25)]
    user = {
        "plan_summary": summary,
        "plan": {g: {"bits": params[f"{g}.bits"], "prune": params[f"{g}.prune"], "width": params[f"{g}.width"]}
                 for g in GROUPS},
        "seed": 1234 + number, "steps": 400, "metrics": metrics, "device": "cpu (synthetic)",
        "finetune_steps": 400, "finetune_curve": curve,
        "finetune_group_curves": {g: curve for g in GROUPS[:3]}, "notes": [], "feasible": feasible,
    }
    if not feasible:
        user["infeasible_because"] = "quality floor" if quality < 0.5 else "memory budget"
    constraints = {"quality_floor": 0.5 - quality, "memory": memory - 800.0}
    return create_trial(values=[quality, latency, memory], params=params, distributions=dists,
                        user_attrs=user, constraints=constraints)


def build_study(url: str, n_trials: int, name: str = "bench", seed: int = 0) -> optuna.Study:
    """A study of ``n_trials`` finished trials (two of them baselines), plus a failed and a pruned one per 100."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # set_metric_names
    rng = random.Random(seed)
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["quality", "latency_ms", "memory_mb"])
    study.set_user_attr("target", "rtx3060")
    study.set_user_attr("objective_units", {"quality": "score", "latency_ms": "ms", "memory_mb": "MiB"})
    study.set_user_attr("objective_kinds", {"quality": "measured on cpu", "latency_ms": "projected for rtx3060",
                                            "memory_mb": "projected for rtx3060"})
    trials = []
    for i in range(n_trials):
        t = _trial(rng, i)
        if i < 2:
            t.user_attrs["baseline"] = ("teacher_fp32", "teacher_fp16")[i]
        trials.append(t)
        if i % 100 == 50:
            trials.append(create_trial(state=TrialState.FAIL))
            trials.append(create_trial(state=TrialState.PRUNED))
    study.add_trials(trials)
    return study


def report_seconds(url: str, name: str, out: Path) -> tuple[float, float]:
    """Wall seconds of one report of study ``name``: reading its data, and writing the HTML and PNGs."""
    from autocompress.report import load_report_data, write_report

    gc.collect()  # not the freeing of the previous report's objects
    start = time.perf_counter()
    data = load_report_data(url, name)
    read = time.perf_counter()
    write_report(data, out)
    return read - start, time.perf_counter() - read


def _median(runs: list[float]) -> float:
    return sorted(runs)[len(runs) // 2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3000)
    ap.add_argument("--baseline", type=int, default=300, help="trials of the baseline study (default 300)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    import autocompress.report  # noqa: F401 - import costs (matplotlib) out of the first timing

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        start = time.perf_counter()
        build_study(url, args.baseline, name="small", seed=1)
        build_study(url, args.trials, name="large", seed=2)
        print(f"built studies of {args.baseline} and {args.trials} trials in {time.perf_counter() - start:.1f} s")
        report_seconds(url, "small", Path(tmp) / "warm.html")  # font cache, first-draw costs
        small, large = [], []
        for _ in range(args.repeats):  # interleaved: a busy machine slows both alike
            small.append(report_seconds(url, "small", Path(tmp) / "small.html"))
            large.append(report_seconds(url, "large", Path(tmp) / "large.html"))
        for label, runs in ((f"{args.baseline}-trial", small), (f"{args.trials}-trial", large)):
            totals = [a + b for a, b in runs]
            print(f"{label} report: median {_median(totals):.2f} s (runs {', '.join(f'{x:.2f}' for x in totals)}); "
                  f"reading the study {_median([a for a, _ in runs]):.2f} s, "
                  f"plots and HTML {_median([b for _, b in runs]):.2f} s")
        s, m = _median([a + b for a, b in small]), _median([a + b for a, b in large])
        print(f"{args.trials} trials take {m / s:.1f} x the {args.baseline}-trial report "
              f"({args.trials / args.baseline:.0f} x the trials)")
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(report_seconds, url, "large", Path(tmp) / "prof.html")
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(40)
            print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
