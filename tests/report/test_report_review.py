"""The report as a user meets it after a search: missing studies, twin trials, figures, output paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest

from autocompress.cli.main import main
from autocompress.report import load_report_data, render_html

optuna.logging.set_verbosity(optuna.logging.WARNING)
DIRECTIONS = ["maximize", "minimize", "minimize"]


def _study(url: str, name: str, rows: list[tuple[tuple[float, float, float], dict]]) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, directions=DIRECTIONS)
    study.set_metric_names(["quality", "latency_ms", "memory_mb"])
    study.set_user_attr("target", "rtx3060")
    for values, attrs in rows:
        t = study.ask()
        for k, v in attrs.items():
            t.set_user_attr(k, v)
        t.set_constraint("quality_floor", -1.0)
        study.tell(t, list(values))
    return study


def test_a_missing_study_is_one_line_naming_the_studies_there(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    for name in ("nightly", "demo"):
        _study(url, name, [])
    out = tmp_path / "r.html"
    assert main(["report", "--study", "nighty", "--storage", url, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no study named 'nighty'" in err[0] and "'demo', 'nightly'" in err[0]
    assert not out.exists()


def test_a_missing_study_in_an_empty_database_says_it_holds_none(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    optuna.create_study(study_name="gone", storage=url)
    optuna.delete_study(study_name="gone", storage=url)
    assert main(["report", "--study", "x", "--storage", url, "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no studies" in err[0]


def test_a_pareto_trial_the_export_leaves_out_as_a_twin_says_so(tmp_path):
    """A baseline the target cannot run at its precision scores as another baseline; the export
    keeps the first of the two, and the report called both plain Pareto trials."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    plan = "teacher (fp32, unchanged)"
    _study(url, "t", [
        ((0.6, 60.0, 400.0), {"baseline": "teacher_fp32", "plan_summary": f"teacher_fp32: {plan}"}),
        ((0.6, 60.0, 400.0), {"baseline": "teacher_fp16", "plan_summary": f"teacher_fp16: {plan}"}),
        ((0.5, 30.0, 200.0), {"plan_summary": "gpt int8"}),
    ])
    data = load_report_data(url, "t")
    assert [(p.pareto, p.same_as) for p in data.points] == [(True, None), (True, 0), (True, None)]
    page = render_html(data)
    assert "feasible Pareto trials: 3 (1 of them the same as an earlier one, which the export holds instead)." in page
    row_1 = page[page.index("<tr><td>1</td>"):page.index("<tr><td>2</td>")]
    assert "<td>yes (the plan and figures of trial 0, which the export holds instead)</td>" in row_1
    row_2 = page[page.index("<tr><td>2</td>"):]
    assert "<td>yes</td></tr>" in row_2


def test_large_figures_are_written_out_and_sizes_in_binary_units(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    _study(url, "n", [((0.5, 12345.678, 1234.4), {})])  # a slow target: over ten seconds
    root = tmp_path / "exp"
    bundle = root / "trial-0000"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps({"trial": 0, "target": {"name": "rtx3060"}, "metrics": [
        {"name": "memory_bytes", "value": 426_770_000.0, "unit": "bytes", "kind": "projected", "device": "rtx3060"},
        {"name": "file_bytes_dec", "value": 1000.0, "unit": "bytes", "kind": "measured", "device": "bundle files"},
        {"name": "gpt_prefill_ms", "value": 15000.0, "unit": "ms", "kind": "projected", "device": "rtx3060"},
    ]}))
    page = render_html(load_report_data(url, "n", export_dir=root))
    assert "e+0" not in page.split("<h2>Trials</h2>")[1]
    assert "<td>12346</td><td>1234</td>" in page
    assert 'memory_bytes: 407 MiB <span class="projected">(projected for rtx3060)</span>' in page
    assert "file_bytes_dec: 1000 bytes" in page and "gpt_prefill_ms: 15000 ms" in page


def test_a_parity_figure_recorded_as_none_for_exact_reads_exact(tmp_path):
    """The export writes an exact parity SNR as None with the note "None = exact": the report
    said "not recorded" beside that note."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    _study(url, "p", [((0.5, 10.0, 100.0), {})])
    root = tmp_path / "exp"
    bundle = root / "trial-0000"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps({"trial": 0, "target": {"name": "rtx3060"}, "metrics": [
        {"name": "parity_snr_db_dec", "value": None, "unit": "dB", "kind": "measured", "device": "cpu",
         "note": "fp32 vs torch; None = exact"},
        {"name": "parity_snr_db_flow", "value": 70.5, "unit": "dB", "kind": "measured", "device": "cpu",
         "note": "fp16 vs torch; None = exact"},
    ]}))
    page = render_html(load_report_data(url, "p", export_dir=root))
    assert ('parity_snr_db_dec: exact <span class="measured">(measured on cpu)</span> '
            '<span class="note">fp32 vs torch</span>') in page
    assert 'parity_snr_db_flow: 70.5 dB <span class="measured">(measured on cpu)</span> <span class="note">fp16 vs torch</span>' in page
    assert "None" not in page


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_an_out_that_is_no_regular_file_is_refused_not_replaced(tmp_path, capsys):
    """The report is renamed onto --out: run as root with --out /dev/null, it replaced the device."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    _study(url, "f", [((0.5, 10.0, 100.0), {})])
    pipe = tmp_path / "pipe.html"
    os.mkfifo(pipe)
    assert main(["report", "--study", "f", "--storage", url, "--out", str(pipe)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a regular file" in err[0]
    assert pipe.is_fifo() and not (tmp_path / "pipe_quality_vs_latency_ms.png").exists()


def test_an_out_the_system_refuses_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    """A read-only file system (or root's view of /proc) let the checks pass, and the write failed
    naming the hidden temporary file beside --out."""
    import autocompress.report._html as html_module

    def refuse(path: Path, text: str) -> None:
        tmp = Path(path).parent / f".{Path(path).name}.x1y2.tmp"
        raise OSError(30, "Read-only file system", str(tmp))

    monkeypatch.setattr(html_module, "atomic_write_text", refuse)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    _study(url, "w", [((0.5, 10.0, 100.0), {})])
    out = tmp_path / "r.html"
    assert main(["report", "--study", "w", "--storage", url, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--out {out}: cannot write the report there (Read-only file system)" in err[0]
    assert ".tmp" not in err[0]


def test_baselines_are_marked_by_feasibility_and_named_inside_the_plot(tmp_path):
    """Every baseline was the same blue star (an infeasible seed recipe looked Pareto), and the name
    of the right-most one (the fp32 teacher, the biggest) ran under the legend."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from autocompress.report._html import _TrialMarks, scatter_figure

    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = _study(url, "b", [
        ((0.59, 59.5, 407.0), {"baseline": "teacher_fp32"}),
        ((0.59, 54.5, 378.5), {"baseline": "teacher_fp16"}),
    ])
    t = study.ask()
    t.set_user_attr("baseline", "seed_recipe")
    t.set_constraint("quality_floor", 1.0)
    study.tell(t, [0.06, 52.5, 370.8])
    data = load_report_data(url, "b")
    fig = scatter_figure(data, 0, 2)
    fig.canvas.draw()
    ax = fig.axes[0]
    (marks,) = [a for a in ax.get_children() if isinstance(a, _TrialMarks)]
    faces = {gid: (to_hex(line.get_color()), line.get_markerfacecolor()) for _, _, gid, line in marks._marks}
    assert faces["trial-1"] == ("#1f5fbf", "#1f5fbf")  # Pareto
    assert faces["trial-0"] == ("#1f5fbf", "none")  # feasible: fp16 is as good and cheaper
    assert faces["trial-2"] == ("#cc3333", "none")  # infeasible
    names = {a.get_text(): a for a in ax.texts}
    assert set(names) == {"teacher_fp32", "teacher_fp16", "seed_recipe (infeasible)"}
    legend = ax.get_legend().get_window_extent()
    for text in names.values():
        box = text.get_window_extent()
        assert box.x1 <= legend.x0, text.get_text()
    assert "baseline (infeasible)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
