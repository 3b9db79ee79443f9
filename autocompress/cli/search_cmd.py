"""``autocompress search`` (= ``python run_search.py``): run or resume a compression search.

Parses the flags into a :class:`~autocompress.search.SearchConfig`, runs the daemon and renders
its events: on a terminal that can redraw, a live table of finished trials, the running trial's
phase with a progress bar over fine-tune steps and the ETA; elsewhere one line per event. On exit it prints
the Pareto table and the export paths.
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.markup import escape

from autocompress.cli.argtypes import non_negative_int, positive_int, user_path, user_text
from autocompress.store.urls import DEFAULT_STORAGE


def register(subparsers) -> None:  # noqa: ANN001
    p = subparsers.add_parser(
        "search",
        help="search compression plans for a voice on a hardware target (same as run_search.py)",
        description="Search compression plans for a GPT-SoVITS voice on a hardware target; "
        "resumes the study when it exists.",
    )
    p.add_argument("--target", required=True, type=user_text, action=_OneTarget,
                   help="hardware target name (autocompress targets lists them), or a path to a target .toml")
    p.add_argument("--gpt", type=user_path, metavar="FILE.ckpt", help="GPT weights (default: the built-in demo voice)")
    p.add_argument("--sovits", type=user_path, metavar="FILE.pth", help="SoVITS weights")
    p.add_argument("--data", type=user_path, metavar="logs/<exp>", help="the voice's experiment folder")
    p.add_argument("--trials", type=positive_int, metavar="N",
                   help="finished trials the study should hold (default: the search space's)")
    p.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS",
        help="stop starting trials this many seconds after the first one started (the running trial finishes)",
    )
    p.add_argument("--steps", type=non_negative_int, metavar="N",
                   help="fine-tune steps per trial (default: the search space's)")
    p.add_argument("--study", metavar="NAME", help="study name (default: demo, or the experiment folder's name)")
    p.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL", help=f"database URL (default {DEFAULT_STORAGE})")
    p.add_argument("--out", type=user_path, metavar="DIR", help="export folder (default exports/<study>/<target>/)")
    p.add_argument("--space", type=user_text, metavar="FILE",
                   help="search-space file (default: search_spaces/demo.toml or gpt_sovits_v2.toml)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where trials run (default auto: cuda when torch sees a CUDA device, else cpu)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="sampler and fine-tune seed (default 0)")
    p.add_argument("--artifacts", type=user_path, metavar="DIR", help="artifact folder (default: beside the database)")
    p.add_argument("--no-export", dest="export", action="store_false", help="do not export the Pareto set at the end")
    p.add_argument("--export-format", default="onnx", choices=["onnx", "checkpoint"],
                   help="onnx: checked ONNX bundles for the target (default); checkpoint: the students' .ckpt/.pth")
    p.set_defaults(func=run)


class _OneTarget(argparse.Action):
    """``--target``, refused when given twice: a search (and its study) is for one target."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        earlier = getattr(namespace, self.dest, None)
        if earlier is not None and earlier != values:
            parser.error(
                f"--target given twice ({earlier}, {values}); a search is for one target: "
                "run one search per target, each with its own --study"
            )
        setattr(namespace, self.dest, values)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):  # also refuses nan; no --timeout means no limit
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text}")
    return value


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - SearchConfig
    """The :class:`~autocompress.search.SearchConfig` the parsed flags describe."""
    from autocompress.search import SearchConfig

    return SearchConfig(
        target=args.target, gpt=args.gpt, sovits=args.sovits, data=args.data, trials=args.trials,
        timeout_s=args.timeout, steps=args.steps, study=args.study, storage=args.storage, out=args.out,
        space=args.space, device=args.device, seed=args.seed, artifacts=args.artifacts, export=args.export,
        export_format=args.export_format,
    )


def run(args: argparse.Namespace) -> int:
    from autocompress.cli.console import output_console
    from autocompress.targets import load_target

    load_target(args.target)  # fail fast, before the heavy imports, on the most common mistake
    from autocompress.search import resolve, run_search

    from autocompress.interrupts import exit_code

    resolved = resolve(config_from_args(args))
    warning = cpu_steps_warning(resolved)
    if warning:
        sys.stderr.write(f"warning: {warning}\n")
    fallbacks = resolved.space.fallbacks(resolved.target)  # said once, not found trial by trial in the table
    if fallbacks:
        sys.stderr.write(f"note: {fallbacks}\n")
    reporter = RichReporter(output_console())
    try:
        summary = run_search(resolved, reporter)
    except KeyboardInterrupt as e:  # before the first trial, or during the export
        reporter.close()
        sys.stderr.write(_stopped_line(e, reporter.phase_name == "export", resolved.out) + "\n")
        return exit_code(e)
    finally:
        reporter.close()
    if summary.status == "interrupted":
        return 143 if summary.interrupted_by == "SIGTERM" else 130
    return 1 if summary.export_error else 0


# A full-size v2 voice's fine-tune step on a CPU (GPT and decoder int8 trained, batch 8, items of
# 3-6 s, 2 threads of a shared 2-core CPU): 15-28 s, measured 2026-12-07. The lower figure.
CPU_SECONDS_PER_STEP = 15.0


def cpu_steps_warning(resolved) -> str:  # noqa: ANN001 - ResolvedSearch
    """A warning for a search on the CPU with the space's default fine-tune steps when they
    would take over an hour a trial on a full-size voice ("" otherwise: --steps given, a GPU,
    or few steps, as the demo space's)."""
    steps = resolved.steps
    if resolved.device != "cpu" or resolved.config.steps is not None or steps * CPU_SECONDS_PER_STEP <= 3600:
        return ""
    hours = steps * CPU_SECONDS_PER_STEP / 3600
    return (f"{steps} fine-tune steps per trial (the search space's default, sized for a GPU) on a CPU: about "
            f"{hours:.0f} h per trial for a full-size voice ({CPU_SECONDS_PER_STEP:.0f} s a step or more); "
            "pass --steps N to fine-tune less (e.g. --steps 200)")


def _stopped_line(interrupt: BaseException, exporting: bool, out) -> str:  # noqa: ANN001 - Path
    """What a search stopped outside its trials tells the user: what was left, what to run."""
    from autocompress.interrupts import signal_name

    by = signal_name(interrupt)
    if exporting:
        return (f"interrupted by {by} during the export ({out} is as the last export left it); the trials are "
                "saved: run the same command again to export them")
    return f"interrupted by {by}; run the same command again to resume the search"


LIVE_ROWS = 6  # finished trials the live view shows (the final table shows them all)


class RichReporter:
    """Renders the daemon's events with rich: live on a terminal, line by line elsewhere."""

    def __init__(self, console) -> None:  # noqa: ANN001
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.live_mode = console.is_interactive  # a dumb terminal (TERM=dumb) cannot redraw: lines, as in a pipe
        self.rows: tuple = ()
        self.info = None
        self.current = ""
        self.phase_name = ""
        self.eta: float | None = None
        self.eta_at = time.monotonic()
        self.last_line = 0.0
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[extra]}"),
            TimeRemainingColumn(), console=console,
        )
        self.task = self.progress.add_task("fine-tune", total=1, extra="", visible=False)
        self.live = None

    # ---- Reporter
    def search_started(self, info) -> None:  # noqa: ANN001
        self.info = info
        c = self.console
        c.print(f"[bold]autocompress search[/bold]  study [cyan]{escape(info.study)}[/cyan]"
                f"  target [cyan]{escape(info.target)}[/cyan] ({escape(info.target_description)})")
        export = f"export -> {info.out}" if info.out is not None else "no export"
        c.print(f"  storage {info.storage}   artifacts {info.artifacts}   {export}", markup=False)
        c.print(f"  voice {info.voice}   device {info.device}   {info.steps} fine-tune steps per trial", markup=False)
        c.print(f"  trials: {info.n_done} of {info.n_trials} done"
                + (f", timeout {info.timeout_s:g} s" if info.timeout_s else ""))
        c.print(f"  quality {info.quality_label}; latency {info.latency_label}; memory {info.memory_label}")
        if self.live_mode:
            from rich.live import Live

            self.live = Live(self._render(), console=c, refresh_per_second=4, transient=False)
            self.live.start()

    def trial_started(self, number: int, label: str, eta_s: float | None) -> None:
        self.current = f"trial {number}: {label}"
        self.phase_name = "start"
        self.eta, self.eta_at = eta_s, time.monotonic()
        self.progress.reset(self.task, total=1, visible=False, description="fine-tune", extra="")
        eta = f" (ETA for the search {_duration(eta_s)})" if eta_s is not None else ""
        self._line(f"[bold]> {escape(self.current)}[/bold]{eta}")

    def phase(self, number: int, phase: str) -> None:
        if number >= 0:
            self.phase_name = phase
            self._line(f"  trial {number}: {escape(phase)}")
        else:  # a search-wide phase: "export", or a line "export: trial 3 (1 of 4): exporting ..."
            self.phase_name = phase.partition(": ")[0]
            self._line(f"  {escape(phase)}" if ": " in phase else f"  {escape(phase)} ...")

    def step(self, number: int, step: int, total: int, loss: float, distance: float | None) -> None:
        extra = f"loss {loss:.4g}" + (f"  teacher distance {distance:.3g}x its start" if distance is not None else "")
        self.progress.update(self.task, completed=step, total=max(total, 1), visible=True, extra=extra)
        if self.live is not None:
            self.live.update(self._render())
        elif time.monotonic() - self.last_line > 5.0 or step == total:
            self.last_line = time.monotonic()
            self.console.print(f"  trial {number}: fine-tune step {step}/{total}  {extra}")

    def trial_finished(self, row, rows) -> None:  # noqa: ANN001
        self.rows = rows
        self.current, self.phase_name = "", ""
        self.progress.update(self.task, visible=False)
        if row.state == "COMPLETE":
            info = self.info  # the kinds go on every line: one that stands alone in a log must say them
            qual = _kind(getattr(info, "quality_label", None))
            lat, mem = _kind(getattr(info, "latency_label", None)), _kind(getattr(info, "memory_label", None))
            figures = (f"latency {row.latency_ms:.3g} ms  memory {row.memory_mb:.4g} MiB ({lat})" if lat == mem
                       else f"latency {row.latency_ms:.3g} ms ({lat})  memory {row.memory_mb:.4g} MiB ({mem})")
            verdict = "feasible" if row.feasible else "infeasible" + (f": {row.reason}" if row.reason else "")
            text = (f"  trial {row.number}: quality {row.quality:.3f} ({escape(qual)})  {escape(figures)}  "
                    f"{escape(verdict)}  ({row.duration_s:.0f} s)")
        else:
            text = f"  trial {row.number}: {row.state} - {escape(str(row.reason))}"
        self._line(text)
        if self.live is not None:
            self.live.update(self._render())

    def exported(self, paths, error: str) -> None:  # noqa: ANN001
        pass  # search_finished prints the exports, or why the export failed, once

    def search_finished(self, summary) -> None:  # noqa: ANN001
        self.close()
        c = self.console
        c.print(self._table(summary.rows, title=f"All trials of study {escape(summary.study)}"))
        pareto = summary.pareto
        if pareto:
            c.print(self._table(pareto, title=f"Feasible Pareto set for {escape(summary.target)}"))
        else:
            c.print("No feasible trial yet: nothing on the Pareto set.")
        for p in summary.exported:
            c.print(f"exported {p}", markup=False)
        if summary.export_error:
            c.print(f"[red]export failed:[/red] {escape(summary.export_error)}")
        if summary.export_skipped:
            c.print("export skipped: SIGTERM asks for a quick stop; the same command (or 'autocompress export') "
                    "exports the Pareto set", markup=False)
        if summary.status == "interrupted":
            c.print(f"search interrupted by {summary.interrupted_by or 'Ctrl-C'} after {_duration(summary.elapsed_s)}; "
                    "finished trials are saved: run the same command again to resume (a trial it stopped runs again)",
                    markup=False)
        else:
            c.print(f"search {summary.status} in {_duration(summary.elapsed_s)}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    # ---- rendering
    def _line(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text)
            self.live.update(self._render())
        else:
            self.console.print(text)

    def _render(self):  # noqa: ANN202
        from rich.console import Group
        from rich.text import Text

        rows = self.rows[-LIVE_ROWS:]  # a small terminal must still show the newest trials
        title = "Finished trials"
        if len(rows) < len(self.rows):
            title += f" (last {len(rows)} of {len(self.rows)})"
        parts = [self._table(rows, title=title, live=True)]
        if self.current:
            eta = ""
            if self.eta is not None:
                eta = f"   search ETA {_duration(max(0.0, self.eta - (time.monotonic() - self.eta_at)))}"
            parts.append(Text(f"{self.current}  [{self.phase_name}]{eta}"))
            parts.append(self.progress)
        return Group(*parts)

    def _table(self, rows, title: str, live: bool = False):  # noqa: ANN001, ANN202
        from rich import box
        from rich.table import Table

        info = self.info
        caption = ""
        if info is not None:
            caption = (f"quality: {info.quality_label}; latency: {info.latency_label}; "
                       f"memory: {info.memory_label}")
        t = Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                  **({"box": box.SIMPLE_HEAD, "pad_edge": False} if live else {}))
        t.add_column("#", justify="right", no_wrap=True)
        if live:  # one line a trial, short heads; the plan gets what the other columns leave of the terminal
            t.add_column("plan", overflow="ellipsis", no_wrap=True, width=max(12, self.console.width - 66))
            heads = ("state", "quality", "lat ms", "MiB", "feas", "P", "time")
        else:
            t.add_column("plan", overflow="fold", ratio=1)
            heads = ("state", "quality", "latency ms", "memory MiB", "feasible", "Pareto", "time")
        for i, name in enumerate(heads):
            t.add_column(name, justify="left" if i in (0, 4, 5) else "right", no_wrap=True)
        for r in rows:
            ok = r.state == "COMPLETE"
            t.add_row(
                str(r.number), escape(r.label) if ok or not r.reason else f"{escape(r.label)}\n[dim]{escape(str(r.reason))}[/dim]",
                r.state,
                f"{r.quality:.3f}" if ok and r.quality is not None else "-",
                f"{r.latency_ms:.3g}" if ok and r.latency_ms is not None else "-",
                f"{r.memory_mb:.4g}" if ok and r.memory_mb is not None else "-",
                ("yes" if r.feasible else "no") if ok else "-",
                "*" if r.pareto else "", _duration(r.duration_s),
            )
        return t


def _kind(label: str | None) -> str:
    """``"projected for rtx3060"`` or ``"measured"`` from an objective's label."""
    if not label:
        return "?"
    return label if label.startswith("projected") else label.split(" on ")[0]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
