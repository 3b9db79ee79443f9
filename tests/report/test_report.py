"""The report renders in a real headless browser with one point per finished trial."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest
import soundfile as sf

from autocompress.cli.main import main
from autocompress.report import load_report_data, point_ids, render_html, sensitivity

optuna.logging.set_verbosity(optuna.logging.WARNING)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _make_study(url: str) -> optuna.Study:
    study = optuna.create_study(
        study_name="rep", storage=url, directions=["maximize", "minimize", "minimize"]
    )
    study.set_metric_names(["quality", "latency_ms", "memory_mb"])
    study.set_user_attr("target", "rtx3060")
    rows = [
        # (bits, prune, quality, latency, memory, feasible, baseline)
        (32, 0.0, 0.95, 40.0, 900.0, True, "teacher_fp32"),
        (16, 0.0, 0.94, 22.0, 500.0, True, "teacher_fp16"),
        (8, 0.3, 0.90, 12.0, 300.0, True, None),
        (4, 0.3, 0.70, 9.0, 200.0, True, None),
        (2, 0.5, 0.20, 8.0, 150.0, False, None),
    ]
    dists = {
        "dec.bits": optuna.distributions.CategoricalDistribution([2, 4, 8, 16, 32]),
        "dec.prune": optuna.distributions.FloatDistribution(0.0, 0.5),
    }
    for bits, prune, q, lat, mem, ok, base in rows:
        study.enqueue_trial({"dec.bits": bits, "dec.prune": prune})
        t = study.ask(dists)
        t.set_constraint("quality_floor", -1.0 if ok else 1.0)
        if base:
            t.set_user_attr("baseline", base)
        study.tell(t, [q, lat, mem])
    t = study.ask(dists)
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    return study


@pytest.fixture
def study_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _make_study(url)
    return url


def _bundle(root: Path) -> Path:
    b = root / "trial-2"
    b.mkdir(parents=True)
    (b / "manifest.json").write_text(json.dumps({
        "target": {"name": "rtx3060"},
        "modules": {"dec": {"requested": "int4", "used": "int8"}, "gpt": {"requested": "int8", "used": "int8"}},
        "metrics": [
            {"name": "latency", "value": 12.0, "unit": "ms", "kind": "projected", "device": "rtx3060"},
            {"name": "decode_rtf", "value": 0.2, "unit": "", "kind": "measured", "device": "cpu"},
        ],
    }))
    t = np.arange(16000) / 32000
    (b / "trial.json").write_text(json.dumps({"trial": 2}))
    sf.write(b / "sample_0.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 32000)
    teacher = root / "teacher"
    teacher.mkdir()
    sf.write(teacher / "sample_0.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 32000)
    return root


def test_report_has_one_point_per_finished_trial_in_each_plot(study_url, tmp_path):
    data = load_report_data(study_url, "rep", export_dir=_bundle(tmp_path / "exp"))
    assert len(data.points) == 5 and data.n_failed == 1
    assert [p.pareto for p in data.points] == [True, True, True, True, False]
    page = render_html(data)
    ids = point_ids(page)
    assert sorted(set(ids)) == sorted(f"trial-{p.number}" for p in data.points)
    assert len(ids) == 2 * len(data.points)  # quality vs latency, quality vs memory
    assert "projected for rtx3060" in page and "measured on cpu" in page
    assert page.count("<audio") == 2
    (bundle,) = data.bundles
    assert bundle.trial == 2 and bundle.target == "rtx3060" and bundle.precisions == {"dec": "int8", "gpt": "int8"}


def test_sensitivity_tracks_quality_per_setting(study_url):
    study = optuna.load_study(study_name="rep", storage=study_url)
    done = [t for t in study.trials if t.values is not None]
    table = {v: q for v, q, _ in sensitivity(done)["dec.bits"]}
    assert table["32"] > table["8"] > table["4"] > table["2"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
def test_report_renders_in_headless_chromium(study_url, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", "--study", "rep", "--storage", study_url, "--out", str(out),
                 "--exports", str(_bundle(tmp_path / "exp"))]) == 0
    assert (tmp_path / "report_quality_vs_latency_ms.png").stat().st_size > 1000
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    assert len(set(point_ids(dom))) == 5, "the browser's DOM must hold every trial point"
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
         "--window-size=1200,1400", "--hide-scrollbars", out.as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    from matplotlib.image import imread

    img = imread(shot)[..., :3]
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    assert img.std() > 0.05, "screenshot is blank"
    assert (img < 0.5).mean() > 0.005, "screenshot has no dark (text/plot) pixels"


def test_report_of_a_missing_study_is_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["report", "--study", "nope", "--storage", url, "--out", str(tmp_path / "r.html")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_report_refuses_another_target_and_a_bad_storage_in_one_line(study_url, tmp_path, capsys):
    out = str(tmp_path / "r.html")
    assert main(["report", "--study", "rep", "--storage", study_url, "--target", "h100", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "searched for target 'rtx3060', not 'h100'" in err[0]
    assert main(["report", "--study", "rep", "--storage", study_url, "--target", "nosuch", "--out", out]) == 2
    assert "unknown target 'nosuch'" in capsys.readouterr().err
    assert main(["report", "--study", "rep", "--storage", "foo://x", "--out", out]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'foo://x' names no database SQLAlchemy knows" in err[0]
    assert not Path(out).exists()


def test_report_checks_its_paths_before_touching_anything(study_url, tmp_path, capsys):
    out = tmp_path / "r.html"
    missing = tmp_path / "typo.db"
    assert main(["report", "--study", "rep", "--storage", f"sqlite:///{missing}", "--out", str(out)]) == 2
    assert f"no database at {missing}" in capsys.readouterr().err
    assert not missing.exists()  # a mistyped path leaves no empty database behind
    assert main(["report", "--study", "rep", "--storage", study_url, "--exports", str(tmp_path / "nope"),
                 "--out", str(out)]) == 2
    assert "--exports" in capsys.readouterr().err and not out.exists()
    folder = tmp_path / "reports"
    folder.mkdir()
    assert main(["report", "--study", "rep", "--storage", study_url, "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and ".tmp" not in err
    assert main(["report", "--study", "rep", "--storage", study_url, "--out", str(out)]) == 0
    assert "no export folder at" in capsys.readouterr().out  # the default folder is missing: said, not hidden
    page = out.read_text()
    assert "latency_ms, measured or projected: not recorded" in page  # a study with no labels says so


def test_export_of_a_missing_database_creates_none(tmp_path, capsys):
    missing = tmp_path / "typo.db"
    assert main(["export", "--study", "s", "--target", "rtx3060", "--storage", f"sqlite:///{missing}",
                 "--out", str(tmp_path / "e")]) == 2
    assert "no database at" in capsys.readouterr().err and not missing.exists()


def test_plot_labels_fit_inside_the_figure(study_url):
    import dataclasses

    import matplotlib.pyplot as plt

    from autocompress.report._html import scatter_figure

    data = load_report_data(study_url, "rep")
    long = ("quality (score), measured on cpu: 0.5 x DistillMOS relative to the teacher + 0.5 x speaker "
            "cosine to the teacher, on held-out sentences")  # as long as the labels say where and how
    data = dataclasses.replace(data, objective_labels=(long, *data.objective_labels[1:]))
    fig = scatter_figure(data, 0, 1)
    fig.canvas.draw()
    box, ax = fig.bbox, fig.axes[0]
    for label in (ax.yaxis.label, ax.xaxis.label):
        extent = label.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1, label
    plt.close(fig)


def test_each_plot_draws_the_front_of_its_own_two_axes():
    from autocompress.report._data import TrialPoint
    from autocompress.report._html import front_2d

    def point(n: int, quality: float, latency: float, memory: float, feasible: bool = True) -> TrialPoint:
        return TrialPoint(n, (quality, latency, memory), feasible, True, None, {})

    # all four are Pareto in three objectives; against memory, trial 1 is beaten by trial 0
    points = [point(0, 0.6, 60.0, 378.0), point(1, 0.1, 55.0, 379.0), point(2, 0.6, 63.0, 407.0),
              point(3, 0.02, 50.0, 371.0), point(4, 0.9, 10.0, 300.0, feasible=False)]
    assert [p.number for p in front_2d(points, 0, 2)] == [3, 0]  # memory: 2 costs more for the same quality
    assert [p.number for p in front_2d(points, 0, 1)] == [3, 1, 0]  # latency: every cheaper one is worse


def test_a_scheduled_export_reports_the_bundles_latest_points_at(tmp_path):
    import json

    from autocompress.report._data import find_bundles

    root = tmp_path / "exports" / "nightly" / "rtx3060"
    for run, trials in (("20261201-0200", (0, 2)), ("20261202-0200", (2, 3))):
        for trial in trials:
            folder = root / "runs" / run / f"trial-{trial:04d}"
            folder.mkdir(parents=True)
            (folder / "manifest.json").write_text(json.dumps({"trial": trial, "target": "rtx3060"}))
    assert len(find_bundles(root)) == 4  # before any run is current: all of them
    (root / "latest").symlink_to(Path("runs") / "20261202-0200")
    assert [b.trial for b in find_bundles(root)] == [2, 3]  # not the first run's, nor twice


def test_the_trial_table_names_each_plan_and_the_parts_of_its_quality(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    study = optuna.create_study(study_name="q", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["quality", "latency_ms", "memory_mb"])
    attrs = [
        {"plan_summary": "teacher_fp32: teacher (fp32, unchanged)", "baseline": "teacher_fp32",
         "metrics": [{"name": n, "value": v, "unit": "", "kind": "measured", "device": "cpu"}
                     for n, v in (("distillmos", 3.71), ("speaker_cos", 1.0), ("mcd_db", 0.0), ("stoi", 1.0))]},
        {"plan_summary": "dec int4 prune 20%",  # an older study: metrics keyed by name
         "metrics": {"distillmos": {"value": 2.5, "kind": "measured"}, "stoi": 0.612}},
        {"infeasible_because": "release floor (speaker cosine 0.00 < 0.85: not the teacher's voice)"},
    ]
    for values, user in zip([(0.8, 10.0, 90.0), (0.4, 5.0, 50.0), (0.3, 4.0, 40.0)], attrs):
        t = study.ask()
        for k, v in user.items():
            t.set_user_attr(k, v)
        t.set_constraint("quality_floor", 1.0 if "infeasible_because" in user else -1.0)
        study.tell(t, list(values))
    page = render_html(load_report_data(url, "q"))
    table = page[page.index("<h2>Trials</h2>"):page.index("<h2>Exported bundles</h2>")]
    assert "<th>plan</th>" in table and "<th>DistillMOS</th>" in table and "<th>STOI</th>" in table
    assert "<td>teacher_fp32: teacher (fp32, unchanged)</td>" in table
    assert "<td>dec int4 prune 20%</td>" in table and "<td>2.5</td>" in table and "<td>0.612</td>" in table
    row_2 = table[table.index("<tr><td>2</td>"):]
    assert row_2.count("<td></td>") >= 4  # no terms recorded: empty cells, not zeros
    assert "<td>no: release floor (speaker cosine 0.00 &lt; 0.85: not the teacher&#x27;s voice)</td>" in row_2


def test_a_checkpoint_export_is_a_bundle_of_the_report(study_url, tmp_path):
    """An export of the students' checkpoints (--export-format checkpoint, or an ONNX export that
    fell back) has no manifest.json; the report said "No bundles exported yet"."""
    root = tmp_path / "exp"
    folder = root / "trial-0002"
    folder.mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps({
        "trial": 2, "kind": "checkpoint", "export_note": "ONNX export failed (ExportError: parity); exported the "
        "student's checkpoints instead",
        "metrics": [{"name": "latency_ms", "value": 12.0, "unit": "ms", "kind": "projected", "device": "rtx3060"}],
    }))
    (root / "pareto.json").write_text(json.dumps({"study": "rep", "target": "rtx3060", "trials": []}))
    data = load_report_data(study_url, "rep", export_dir=root)
    (bundle,) = data.bundles
    assert bundle.trial == 2 and bundle.kind == "checkpoint" and bundle.target == "rtx3060"
    page = render_html(data)
    assert "No bundles exported yet" not in page
    assert "checkpoint export" in page and "ONNX export failed (ExportError: parity)" in page
    assert "latency_ms: 12 ms <span class=\"projected\">(projected for rtx3060)</span>" in page


def test_missing_figures_are_not_shown_as_numbers(study_url, tmp_path):
    root = _bundle(tmp_path / "exp")
    manifest = root / "trial-2" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["metrics"] += [
        {"name": "parity_snr_db_flow", "value": None, "unit": "dB", "kind": "measured", "device": "cpu"},
        {"name": "old_figure", "value": 3.0, "unit": "MiB"},  # a manifest that did not say how it was obtained
    ]
    manifest.write_text(json.dumps(m))
    page = render_html(load_report_data(study_url, "rep", export_dir=root))
    assert "None" not in page
    assert "parity_snr_db_flow: not recorded <span" in page
    assert "old_figure: 3 MiB <span class=\"\">(measured or projected: not recorded)</span>" in page


def test_a_quality_part_that_is_nan_is_an_empty_cell(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    study = optuna.create_study(study_name="n", storage=url, directions=["maximize", "minimize", "minimize"])
    t = study.ask()
    t.set_user_attr("metrics", [{"name": "stoi", "value": float("nan")}, {"name": "distillmos", "value": 2.0}])
    study.tell(t, [0.5, 10.0, 100.0])
    page = render_html(load_report_data(url, "n"))
    row = page[page.index("<tr><td>0</td>"):]
    assert "nan" not in row.lower().split("</table>")[0] and "<td>2</td><td></td>" in row


def test_objective_names_that_are_no_file_names_still_give_plots(tmp_path):
    """The PNGs are named after the objectives; a "/" in one failed after the HTML was written."""
    from autocompress.report import write_report

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["quality", "latency ms/audio s", "memory <MiB>"])
    study.tell(study.ask(), [0.5, 10.0, 100.0])
    out = tmp_path / "reports" / "r.html"
    written = write_report(load_report_data(url, "s"), out)
    assert len(written) == 3 and all(p.parent == out.parent and p.is_file() for p in written)


def test_the_summary_counts_pruned_and_unfinished_trials(study_url):
    study = optuna.load_study(study_name="rep", storage=study_url)
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    study.ask()  # still running
    page = render_html(load_report_data(study_url, "rep"))
    assert "Finished trials: 5; failed: 1; pruned: 1; still running or waiting: 1; feasible Pareto trials: 4." in page


def test_a_study_without_its_labels_yet_is_known_by_its_identity(tmp_path, capsys):
    """A search stopped between creating its study and starting its first trial leaves only the
    study's identity: the report took any --target as the study's own."""
    from autocompress.search.study import IDENTITY_ATTR

    url = f"sqlite:///{tmp_path / 'i.db'}"
    study = optuna.create_study(study_name="i", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr(IDENTITY_ATTR, {"target": "rtx3060", "scoring": 4})
    out = str(tmp_path / "r.html")
    assert main(["report", "--study", "i", "--storage", url, "--target", "h100", "--out", out]) == 2
    assert "searched for target 'rtx3060', not 'h100'" in capsys.readouterr().err
    assert load_report_data(url, "i").target == "rtx3060"


def test_a_study_of_an_older_scoring_version_says_so(tmp_path):
    from autocompress.search.study import IDENTITY_ATTR, SCORING_VERSION

    url = f"sqlite:///{tmp_path / 'o.db'}"
    for name, scoring in (("old", 2), ("new", SCORING_VERSION)):
        study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize", "minimize"])
        study.set_user_attr(IDENTITY_ATTR, {"target": "rtx3060", "scoring": scoring})
        study.tell(study.ask(), [0.5, 10.0, 100.0])
    assert f"scored by scoring version 2; this autocompress scores with version {SCORING_VERSION}" in render_html(
        load_report_data(url, "old"))
    assert "scoring version" not in render_html(load_report_data(url, "new"))


def test_the_export_of_another_study_is_refused_in_one_line(study_url, tmp_path, capsys):
    root = _bundle(tmp_path / "exp")
    (root / "pareto.json").write_text(json.dumps({"study": "other", "target": "rtx3060", "trials": []}))
    out = tmp_path / "r.html"
    assert main(["report", "--study", "rep", "--storage", study_url, "--exports", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds the export of study 'other'" in err[0] and not out.exists()


def test_a_bundle_of_a_trial_off_the_front_says_so(study_url, tmp_path):
    root = _bundle(tmp_path / "exp")
    stale = root / "trial-4"
    stale.mkdir()
    (stale / "manifest.json").write_text(json.dumps({"trial": 4, "target": {"name": "rtx3060"}}))
    page = render_html(load_report_data(study_url, "rep", export_dir=root))
    assert "<td>4 (not on the feasible Pareto set now)</td>" in page and "<td>2</td>" in page


def test_a_bundle_exported_by_number_though_infeasible_says_why(study_url, tmp_path):
    root = _bundle(tmp_path / "exp")
    asked = root / "trial-5"
    asked.mkdir()
    (asked / "manifest.json").write_text(json.dumps({"trial": 5, "target": {"name": "rtx3060"}}))
    (asked / "trial.json").write_text(json.dumps(
        {"trial": 5, "kind": "onnx", "feasible": False, "infeasible_because": "rtf 1.8 > 1.0 budget"}))
    page = render_html(load_report_data(study_url, "rep", export_dir=root))
    assert "<td>5 (infeasible for the target: rtf 1.8 &gt; 1.0 budget; exported as asked)</td>" in page
    assert "<td>2</td>" in page  # a feasible trial.json-less bundle of the front is unmarked


def test_a_study_of_a_target_file_is_reported_under_the_target_s_name(tmp_path, capsys):
    """A study searched with --target ./my-gpu.toml is named "my-gpu"; --target my-gpu was refused
    as an unknown target although it is the study's own."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = optuna.create_study(study_name="c", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("target", "my-gpu")
    study.tell(study.ask(), [0.5, 10.0, 100.0])
    out = tmp_path / "r.html"
    assert main(["report", "--study", "c", "--storage", url, "--target", "my-gpu", "--out", str(out)]) == 0
    assert "Target: <b>my-gpu</b>" in out.read_text()
    assert main(["report", "--study", "c", "--storage", url, "--target", "rtx3060", "--out", str(out)]) == 2
    assert "searched for target 'my-gpu', not 'rtx3060'" in capsys.readouterr().err


def _trial_rows(page: str) -> list[str]:
    table = page[page.index("<h2>Trials</h2>"):page.index("<h2>Exported bundles</h2>")]
    return re.findall(r"<tr><td>(\d+)</td>", table)


def test_a_report_draws_and_lists_every_finished_trial_once(study_url, tmp_path):
    """The plots draw every trial's marker from one artist and save the SVG and the PNG of a plot
    from one figure (a study of thousands of trials took seconds a plot): each plot, PNG and table
    row must still be there, once per finished trial, and each PNG be the plot's own."""
    import io

    import matplotlib.pyplot as plt

    from autocompress.report import write_report
    from autocompress.report._html import scatter_figure

    study = optuna.load_study(study_name="rep", storage=study_url)
    for q, lat, mem in ((0.91, 14.0, 320.0), (0.5, 30.0, 700.0), (0.85, 9.5, 260.0)):
        t = study.ask()
        t.set_constraint("quality_floor", -1.0)
        study.tell(t, [q, lat, mem])
    data = load_report_data(study_url, "rep")
    numbers = sorted(p.number for p in data.points)
    assert len(numbers) == 8
    out = tmp_path / "r.html"
    written = write_report(data, out)
    page = out.read_text()
    assert _trial_rows(page) == [str(n) for n in numbers]
    plots = page.split("<svg")[1:]
    assert len(plots) == 2 and len(written) == 3  # quality against latency and against memory; a PNG each
    for svg in plots:
        assert point_ids(svg) == [f"trial-{n}" for n in numbers]  # in trial order, none twice
    for png, (yi, xi) in zip(written[1:], ((0, 1), (0, 2))):
        fig = scatter_figure(data, yi, xi)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        assert png.read_bytes() == buf.getvalue()


def test_the_trial_markers_draw_as_a_line_per_trial_would(study_url):
    """The SVG of a plot is that of a figure with one line per trial (in trial order, styled by
    the trial's kind): no marker is dropped, restyled or moved by drawing them from one artist."""
    import io

    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from autocompress.report._html import _TrialMarks, scatter_figure

    data = load_report_data(study_url, "rep")

    def svg(fig) -> bytes:  # noqa: ANN001
        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": "fixed"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
        return buf.getvalue()

    for yi, xi in ((0, 1), (0, 2)):
        fig = scatter_figure(data, yi, xi)
        ours = svg(fig)
        ref = scatter_figure(data, yi, xi)
        ax = ref.axes[0]
        (marks,) = [a for a in ax.get_children() if isinstance(a, _TrialMarks)]
        marks.remove()
        for line in ax.get_lines():
            line.set_zorder(2.1)  # the Pareto staircase: drawn after the markers, as before
        for p in data.points:
            if p.baseline:
                color = "#1f5fbf" if p.feasible else "#c33"
                style = dict(marker="*", markersize=13, color=color, markerfacecolor=color if p.pareto else "none")
            elif not p.feasible:
                style = dict(marker="x", markersize=7, color="#c33")
            else:
                style = dict(marker="o", markersize=7, color="#2a2", markerfacecolor="#2a2" if p.pareto else "none")
            line = ax.add_line(Line2D([p.values[xi]], [p.values[yi]], linestyle="none", **style))
            line.set_gid(f"trial-{p.number}")
        ax.relim()  # the limits of these lines, not the ones set for the markers
        ax.autoscale_view()
        assert ours == svg(ref)


def test_the_report_command_reads_the_study_once(study_url, tmp_path, monkeypatch, capsys):
    """With an export folder the command read the whole study twice (seconds at thousands of trials)."""
    import autocompress.report._data as data_module

    reads = []
    load = optuna.load_study

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        reads.append(kwargs.get("study_name"))
        return load(*args, **kwargs)

    monkeypatch.setattr(data_module.optuna, "load_study", counted)
    out = tmp_path / "r.html"
    exports = _bundle(tmp_path / "exp")
    assert main(["report", "--study", "rep", "--storage", study_url, "--exports", str(exports), "--out", str(out)]) == 0
    assert reads == ["rep"]
    assert out.read_text(encoding="utf-8").count("<audio") == 2  # the bundle's sample and the teacher's


def test_the_notes_of_objective_figures_are_shown_beside_them(tmp_path):
    """An int8 trial's latency measured on cpu is a torch fp32 run: the report showed the figure
    without that warning (nor a projection's assumptions)."""
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    study = optuna.create_study(study_name="n", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_metric_names(["quality", "latency_ms", "memory_mb"])
    fp32 = "torch fp32 run of the student (its quantization does not count)"
    shape = "1.5 s utterance end to end"
    noted = [
        # as score.latency_metric writes it: the utterance, then the note of the real-time factor it scales
        {"name": "latency_ms", "value": 80.0, "unit": "ms", "kind": "measured", "device": "cpu",
         "note": f"{shape}; decode; {fp32}"},
        {"name": "rtf", "value": 0.05, "unit": "x", "kind": "measured", "device": "cpu", "note": f"decode; {fp32}"},
        {"name": "memory_bytes", "value": 2**20, "unit": "bytes", "kind": "projected", "device": "cpu",
         "note": "weights at int8"},
    ]
    plain = [{k: v for k, v in m.items() if k != "note"} for m in noted]
    for metrics, values in ((noted, [0.9, 80.0, 1.0]), (noted, [0.8, 70.0, 1.0]), (plain, [0.7, 60.0, 1.0])):
        t = study.ask()
        t.set_user_attr("metrics", metrics)
        study.tell(t, values)
    data = load_report_data(url, "n")
    assert data.points[0].notes == ("", f"{shape}; decode; {fp32}", "weights at int8")
    table = render_html(data)
    table = table[table.index("<h2>Trials</h2>"):table.index("<h2>Exported bundles</h2>")]
    row_0 = table[table.index("<tr><td>0</td>"):table.index("<tr><td>1</td>")]
    assert "<td>0.9</td>" in row_0  # the quality has no note
    assert f'<td title="{shape}; decode; {fp32}">80<sup>[1]</sup></td>' in row_0
    assert '<td title="weights at int8">1<sup>[2]</sup></td>' in row_0
    assert "70<sup>[1]</sup>" in table  # one mark per distinct note
    row_2 = table[table.index("<tr><td>2</td>"):]
    assert "<sup>" not in row_2 and "<td>60</td>" in row_2
    assert f"[1] {shape}; decode; {fp32}<br>[2] weights at int8</p>" in table
    assert "[3]" not in table


def test_a_bundle_figure_shows_its_note(study_url, tmp_path):
    root = _bundle(tmp_path / "exp")
    manifest = root / "trial-2" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["metrics"][1]["note"] = "torch fp32 run of the student <its quantization does not count>"
    manifest.write_text(json.dumps(m))
    page = render_html(load_report_data(study_url, "rep", export_dir=root))
    assert ('decode_rtf: 0.2 <span class="measured">(measured on cpu)</span> <span class="note">torch fp32 run of '
            "the student &lt;its quantization does not count&gt;</span>") in page
