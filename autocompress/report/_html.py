"""Render a search report: one self-contained HTML file plus PNG plots.

Plots are drawn with matplotlib (Agg). In the HTML they are inline SVG where every trial is
a group with id ``trial-<number>``, so a browser test can count the points; audio is
embedded as data URIs so the file can be mailed or opened offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.artist import Artist, allow_rasterization  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from autocompress.report._data import QUALITY_TERMS, ReportData, TrialPoint  # noqa: E402
from autocompress.runtime.files import atomic_write_text  # noqa: E402
from autocompress.search.study import SCORING_VERSION  # noqa: E402

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}
th{background:#f4f4f4} .plots{display:flex;flex-wrap:wrap;gap:1em} .plots svg{width:520px;height:auto}
.note{color:#666;font-size:.9em} .measured{color:#075} .projected{color:#a50}
"""


def _scatter(data: ReportData, y_index: int, x_index: int, formats: tuple[str, ...]) -> list[bytes]:
    """Quality (y) against one cost objective (x): feasible, infeasible, Pareto, baselines; the
    plot in each of ``formats`` (e.g. "svg", "png"), all saved from one figure."""
    fig = scatter_figure(data, y_index, x_index)
    out = []
    try:
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt)
            out.append(buf.getvalue())
    finally:
        plt.close(fig)
    return out


class _TrialMarks(Artist):
    """Every trial's marker, each drawn as a one-point line of its own with the id ``trial-<number>``.

    One artist instead of a line per trial: a study of thousands of trials spent most of its
    report building and laying out those lines. The drawing is a line's, point by point, in
    trial order, so the plots (and each trial's group in the SVG) are those of a line per trial.
    """

    def __init__(self, ax, marks: list[tuple[float, float, str, Line2D]]) -> None:  # noqa: ANN001 - an Axes
        super().__init__()
        self.set_zorder(Line2D.zorder)  # among the lines, in the order they were added
        self.set_in_layout(False)  # clipped to the axes: never moves the layout
        self._marks = marks
        for line in {id(m[3]): m[3] for m in marks}.values():  # what Axes.add_line gives each line
            line.set_figure(ax.figure)
            line.set_transform(ax.transData)
            line.set_clip_path(ax.patch)

    @allow_rasterization
    def draw(self, renderer) -> None:  # noqa: ANN001 - a matplotlib renderer
        if not self.get_visible():
            return
        for x, y, gid, line in self._marks:
            line.set_data([x], [y])
            line.set_gid(gid)
            line.draw(renderer)
        self.stale = False


def front_2d(points: list[TrialPoint], y_index: int, x_index: int) -> list[TrialPoint]:
    """The feasible trials no other feasible one beats on both axes of this plot (quality up,
    cost down), by cost. The three-objective Pareto set (the filled markers) is not a front in
    a two-axis view, so a line through it zigzags."""
    feasible = [p for p in points if p.feasible]

    def beaten(p: TrialPoint) -> bool:
        return any(
            q.values[y_index] >= p.values[y_index] and q.values[x_index] <= p.values[x_index]
            and (q.values[y_index], q.values[x_index]) != (p.values[y_index], p.values[x_index])
            for q in feasible
        )

    return sorted((p for p in feasible if not beaten(p)), key=lambda p: (p.values[x_index], -p.values[y_index]))


def _axis_label(text: str, width: int) -> str:
    """A label in lines of at most ``width`` characters (the labels say measured or projected, and where)."""
    return textwrap.fill(text, width=width, break_long_words=False)


def scatter_figure(data: ReportData, y_index: int, x_index: int):  # noqa: ANN201 - a matplotlib Figure
    """The figure of :func:`_scatter`."""
    fig, ax = plt.subplots(figsize=(7.6, 4.4), dpi=100)
    styles: dict[str, Line2D] = {}  # one line per marker style, drawn at each trial's point in turn
    marks = []
    for p in data.points:
        x, y = p.values[x_index], p.values[y_index]
        if p.baseline:  # a star, filled on the Pareto set, red where infeasible, as the other trials' marks
            key = "baseline, infeasible" if not p.feasible else "baseline, Pareto" if p.pareto else "baseline"
            color = "#c33" if not p.feasible else "#1f5fbf"
            style = dict(marker="*", markersize=13, color=color, markerfacecolor=color if p.pareto else "none")
        elif not p.feasible:
            key, style = "infeasible", dict(marker="x", markersize=7, color="#c33")
        else:
            key = "pareto" if p.pareto else "feasible"
            style = dict(marker="o", markersize=7, color="#2a2", markerfacecolor="none" if not p.pareto else "#2a2")
        if key not in styles:
            styles[key] = Line2D([], [], linestyle="none", **style)
        marks.append((x, y, f"trial-{p.number}", styles[key]))
    if marks:
        ax.add_artist(_TrialMarks(ax, marks))
        ax.update_datalim([(x, y) for x, y, _, _ in marks])
        ax.autoscale_view()
    left, right = ax.get_xlim()
    for p in data.points:
        if p.baseline:  # named left of a point in the right half: to its right, the legend hid the name
            x, y = p.values[x_index], p.values[y_index]
            to_left = (x - left) > 0.5 * (right - left)
            ax.annotate(p.baseline + ("" if p.feasible else " (infeasible)"), (x, y), textcoords="offset points",
                        xytext=(-6 if to_left else 6, 4), ha="right" if to_left else "left", fontsize=8)
    front = front_2d(data.points, y_index, x_index)
    if len(front) > 1:  # a staircase: the best quality reached at each cost
        ax.step([p.values[x_index] for p in front], [p.values[y_index] for p in front], where="post",
                color="#2a2", alpha=0.4)
    ax.set_xlabel(_axis_label(data.objective_labels[x_index], 80))
    ax.set_ylabel(_axis_label(data.objective_labels[y_index], 50))
    ax.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], marker="o", color="#2a2", linestyle="none", label="Pareto (feasible)"),
        plt.Line2D([], [], marker="o", color="#2a2", markerfacecolor="none", linestyle="none", label="feasible"),
        plt.Line2D([], [], marker="x", color="#c33", linestyle="none", label="infeasible"),
        plt.Line2D([], [], marker="*", color="#1f5fbf", linestyle="none", label="baseline (Pareto)"),
    ]
    if any(p.baseline and p.feasible and not p.pareto for p in data.points):
        handles.append(plt.Line2D([], [], marker="*", color="#1f5fbf", markerfacecolor="none", linestyle="none",
                                  label="baseline (feasible)"))
    if any(p.baseline and not p.feasible for p in data.points):
        handles.append(plt.Line2D([], [], marker="*", color="#c33", markerfacecolor="none", linestyle="none",
                                  label="baseline (infeasible)"))
    # beside the axes: never over a point, and "best" placement costs seconds on a study of thousands
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)  # laid out: each save then draws the figure once, not twice
    return fig


def _plot_pairs(data: ReportData) -> list[tuple[str, int, int]]:
    """(file stem, y index, x index): quality against every other objective. The stem is safe
    as a file name whatever the study calls its objectives (e.g. "latency ms/audio s")."""
    return [
        (re.sub(r"[^\w.-]+", "_", f"quality_vs_{data.objective_names[i]}"), 0, i)
        for i in range(1, len(data.objective_names))
    ]


def _svg_inline(svg: bytes) -> str:
    text = svg.decode("utf-8")
    return text[text.find("<svg") :]


def _audio(path: Path, label: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<div class="audio"><span>{html.escape(label)}</span><br>'
        f'<audio controls preload="none" src="data:audio/wav;base64,{b64}"></audio></div>'
    )


def _figure(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits, written out in full below 10^15 (12346 ms, not
    1.235e+04 ms); "inf", "-inf" or "NaN" when it is not finite."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if 10**digits <= abs(value) < 1e15:
        return f"{value:.0f}"
    return format(value, f".{digits}g")


def _number(value: object, digits: int = 4) -> str | None:
    """``value`` as a figure, or None when it is not a finite number (missing, NaN, text, a flag)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return _figure(value, digits)


def _size(n: float) -> str:
    """A number of bytes in KiB, MiB or GiB (a size of 426,800,000 bytes is "407 MiB")."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{_figure(n / scale)} {unit}"
    return f"{_figure(n)} bytes"


# A manifest's note may say what a missing figure means (a parity SNR: "None = exact").
_NONE_MEANS = re.compile(r"(?:^|;)\s*None = ([^;]+)")


def _metric_cell(m: dict) -> str:
    kind = str(m.get("kind") or "")
    where = m.get("device") or m.get("target") or ""
    label = f"{kind} {'on' if kind == 'measured' else 'for'} {where}".strip() if kind else ""
    label = label or "measured or projected: not recorded"
    value, unit = m.get("value"), str(m.get("unit") or "")
    note = m.get("note") if isinstance(m.get("note"), str) else ""
    meaning = _NONE_MEANS.search(note)
    note = _NONE_MEANS.sub("", note).strip(" ;")  # about the manifest's JSON, which the report does not show
    figure = _number(value)
    if figure is None:  # no unit after a missing figure: "None dB" reads as a measurement
        if value is None:
            vtxt = html.escape(meaning.group(1).strip()) if meaning else "not recorded"
        else:
            vtxt = html.escape(str(value))
    elif unit == "bytes":
        vtxt = _size(value)
    else:
        vtxt = f"{figure} {html.escape(unit)}".rstrip()
    note = f' <span class="note">{html.escape(note)}</span>' if note else ""
    return (f'{html.escape(str(m.get("name", "")))}: {vtxt} <span class="{html.escape(kind)}">({html.escape(label)})'
            f"</span>{note}")


# Column heads of the quality's parts (measured with the quality, on the held-out sentences).
_TERM_HEADS = {"distillmos": "DistillMOS", "speaker_cos": "speaker cosine", "mcd_db": "MCD, dB", "stoi": "STOI"}


def _feasible_cell(p: TrialPoint) -> str:
    if p.feasible:
        return "yes"
    return "no" + (f": {html.escape(p.infeasible_because)}" if p.infeasible_because else "")


def _pareto_cell(p: TrialPoint) -> str:
    if not p.pareto:
        return ""
    if p.same_as is not None:
        return f"yes (the plan and figures of trial {p.same_as}, which the export holds instead)"
    return "yes"


def _points_table(data: ReportData) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in data.objective_labels)
    terms = [k for k in QUALITY_TERMS if any(k in p.terms for p in data.points)]
    head += "".join(f"<th>{_TERM_HEADS[k]}</th>" for k in terms)
    rows = []
    footnotes: dict[str, int] = {}  # an objective figure's note -> its mark, one per distinct note

    def objective_cell(value: float, note: str) -> str:
        if not note:
            return f"<td>{_figure(value)}</td>"
        mark = footnotes.setdefault(note, len(footnotes) + 1)
        return f'<td title="{html.escape(note)}">{_figure(value)}<sup>[{mark}]</sup></td>'

    for p in sorted(data.points, key=lambda p: p.number):
        notes = (*p.notes, *("",) * (len(p.values) - len(p.notes)))
        vals = "".join(objective_cell(v, n) for v, n in zip(p.values, notes))
        vals += "".join(f"<td>{_number(p.terms.get(k), 3) or ''}</td>" for k in terms)
        rows.append(
            f"<tr><td>{p.number}</td><td>{html.escape(p.plan or p.baseline or '')}</td>{vals}"
            f"<td>{_feasible_cell(p)}</td><td>{_pareto_cell(p)}</td></tr>"
        )
    note = ("<p class='note'>DistillMOS, speaker cosine and MCD make up the quality (docs/quality.md); STOI is "
            "the intelligibility of the student's speech against the teacher's. All measured with the quality.</p>"
            if terms else "")
    table = f"<table><tr><th>trial</th><th>plan</th>{head}<th>feasible</th><th>Pareto</th></tr>{''.join(rows)}</table>"
    if footnotes:
        marks = "<br>".join(f"[{k}] {html.escape(text)}" for text, k in footnotes.items())
        note = f"<p class='note'>What the marked objective figures are of, or assume:<br>{marks}</p>" + note
    return table + note


def _counts(data: ReportData) -> str:
    """How many trials the study holds in each state, and how many are on the feasible Pareto set."""
    text = f"Finished trials: {len(data.points)}; failed: {data.n_failed}; pruned: {data.n_pruned}"
    if data.n_running:
        text += f"; still running or waiting: {data.n_running}"
    text += f"; feasible Pareto trials: {sum(p.pareto for p in data.points)}"
    twins = sum(p.pareto and p.same_as is not None for p in data.points)
    if twins:
        text += f" ({twins} of them the same as an earlier one, which the export holds instead)"
    return text + "."


def _scoring_note(data: ReportData) -> str:
    """A warning when the study was scored by another scoring version than this autocompress's."""
    if data.scoring is None or data.scoring == SCORING_VERSION:
        return ""
    return (f"<p class='note'>This study was scored by scoring version {data.scoring}; this autocompress scores "
            f"with version {SCORING_VERSION}. Its figures do not compare with those of a study scored by another "
            "version.</p>")


def _bundle_rows(data: ReportData) -> str:
    """The exported bundles' table rows; a bundle of a trial no longer on the feasible Pareto set says so."""
    front = {p.number for p in data.points if p.pareto}
    rows = []
    for b in data.bundles:
        metrics = "<br>".join(_metric_cell(m) for m in b.metrics)
        prec = ", ".join(f"{k}: {v}" for k, v in sorted(b.precisions.items()))
        if b.kind != "onnx":
            prec = prec or f"{b.kind} export (the student's .ckpt/.pth, no ONNX graphs)"
        trial = "" if b.trial is None else str(b.trial)
        if b.infeasible:
            trial += f" (infeasible for the target: {html.escape(b.infeasible)}; exported as asked)"
        elif b.trial is not None and b.trial not in front:
            trial += " (not on the feasible Pareto set now)"
        notes = f"<br><span class='note'>{html.escape(b.note)}</span>" if b.note else ""
        rows.append(
            f"<tr><td>{html.escape(str(b.path))}{notes}</td><td>{trial}</td>"
            f"<td>{html.escape(b.target)}</td><td>{html.escape(prec)}</td><td>{metrics}</td></tr>"
        )
    return "".join(rows)


def render_html(data: ReportData) -> str:
    """The whole report as one HTML string."""
    return _page(data)


def _page(data: ReportData, pngs: list[bytes] | None = None) -> str:
    """The report's HTML; with ``pngs``, each plot's PNG is appended to it (in :func:`_plot_pairs` order)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>autocompress report: {html.escape(data.study_name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Search report: {html.escape(data.study_name)}</h1>",
        f"<p>Target: <b>{html.escape(data.target or 'unknown')}</b>. {_counts(data)}</p>",
        _scoring_note(data),
        "<p class='note'>Figures labelled <span class='projected'>projected</span> are estimated for the target "
        "from FLOPs and bytes; <span class='measured'>measured</span> ones were timed on the named device.</p>",
        "<h2>Pareto fronts</h2><div class='plots'>",
    ]
    for _stem, yi, xi in _plot_pairs(data):
        svg, *png = _scatter(data, yi, xi, ("svg",) if pngs is None else ("svg", "png"))
        parts.append(_svg_inline(svg))
        if pngs is not None:
            pngs.extend(png)
    parts.append("</div><h2>Trials</h2>")
    parts.append(_points_table(data))
    parts.append("<h2>Exported bundles</h2>")
    if data.bundles:
        parts.append(
            "<table><tr><th>bundle</th><th>trial</th><th>target</th><th>precision per module</th>"
            f"<th>metrics</th></tr>{_bundle_rows(data)}</table>"
        )
    else:
        parts.append("<p>No bundles exported yet.</p>")
    parts.append("<h2>Per-module sensitivity</h2><p class='note'>Mean quality of the finished trials for each value a "
                 "module's setting took (estimated from the trials, not a controlled sweep).</p>")
    if data.sensitivity:
        for name, rows in data.sensitivity.items():
            cells = "".join(f"<tr><td>{html.escape(v)}</td><td>{_figure(q)}</td><td>{n}</td></tr>" for v, q, n in rows)
            parts.append(f"<h3>{html.escape(name)}</h3><table><tr><th>value</th><th>mean quality</th><th>trials</th></tr>{cells}</table>")
    else:
        parts.append("<p>No searched parameters yet.</p>")
    parts.append("<h2>Listen</h2>")
    for i, wav in enumerate(data.teacher_samples):
        parts.append(_audio(wav, f"teacher, sample {i + 1}"))
    for b in data.bundles:
        for i, wav in enumerate(b.samples):
            parts.append(_audio(wav, f"{b.path.name}, sample {i + 1}"))
    if not data.teacher_samples and not any(b.samples for b in data.bundles):
        parts.append("<p>No audio samples found.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(data: ReportData, out: Path, png_dir: Path | None = None) -> list[Path]:
    """Write the HTML (atomically) and one PNG per plot; return the files written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs: list[bytes] = []  # drawn with the HTML's plots: each figure is built once
    atomic_write_text(out, _page(data, pngs))
    written = [out]
    png_dir = out.parent if png_dir is None else png_dir
    for (stem, _yi, _xi), image in zip(_plot_pairs(data), pngs, strict=True):
        png = png_dir / f"{out.stem}_{stem}.png"
        png.write_bytes(image)
        written.append(png)
    return written


def point_ids(svg_or_html: str) -> list[str]:
    """The trial ids plotted in a rendered report (used by tests and the CLI summary)."""
    return re.findall(r'id="(trial-\d+)"', svg_or_html)


__all__ = ["render_html", "write_report", "point_ids", "TrialPoint"]
