"""``autocompress export``: export a study's feasible Pareto trials for its target, or the trials named."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autocompress.cli.argtypes import user_path, user_text
from autocompress.store.urls import DEFAULT_STORAGE


def register(subparsers) -> None:  # noqa: ANN001
    p = subparsers.add_parser("export", help="export a study's feasible Pareto-best trials to a folder")
    p.add_argument("--study", required=True, metavar="NAME", help="study name")
    p.add_argument("--target", required=True, type=user_text, help="the target the study searched for")
    p.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL", help=f"database URL (default {DEFAULT_STORAGE})")
    p.add_argument("--out", type=user_path, metavar="DIR", help="export folder (default exports/<study>/<target>/)")
    p.add_argument("--artifacts", type=user_path, metavar="DIR", help="artifact folder (default: beside the database)")
    p.add_argument("--export-format", default="onnx", choices=["onnx", "checkpoint"],
                   help="onnx: checked ONNX bundles for the target (default); checkpoint: the students' .ckpt/.pth")
    p.add_argument("--trial", type=int, nargs="+", metavar="N",
                   help="export these trials instead of the feasible Pareto set, feasible or not")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autocompress.cli.console import output_console

    from autocompress.exceptions import ExportError
    from autocompress.search import export_pareto
    from autocompress.store import require_database
    from autocompress.targets import load_target

    target = load_target(args.target)  # one-line error listing the valid names
    require_database(args.storage)
    out = args.out or Path("exports") / args.study / target.name  # a target file: its stem, as search names it
    live = live_searches(args.storage, args.study)
    for run in live:
        sys.stderr.write(f"warning: a search of study {args.study} is still running (pid {run.pid} on "
                         f"{run.hostname}); this export holds the front as it is now\n")
    try:
        paths = export_pareto(
            storage=args.storage, study_name=args.study, target=target, out_dir=out, artifacts=args.artifacts,
            export_format=args.export_format, progress=lambda line: print(line, file=sys.stderr, flush=True),
            trials=args.trial, warn=lambda line: print(f"warning: {line}", file=sys.stderr, flush=True),
        )
    except ExportError as e:
        if not live:
            raise
        raise ExportError(f"{e}; or the search still running dropped it as its trial left the front: "
                          "export again once the search finishes") from e
    console = output_console()
    if not paths:
        console.print(f"study {args.study}: no feasible trial on the Pareto set; wrote only {out / 'pareto.json'}",
                      markup=False)
        hint = _nothing_feasible(args, target.name)
        if hint:
            console.print(hint, markup=False)
    for p in paths:
        console.print(f"exported {p}", markup=False)
    return 0


def _nothing_feasible(args: argparse.Namespace, target_name: str) -> str:
    """The line naming the trials closest to feasible and how to export one ("" when some trial is feasible)."""
    import optuna

    from autocompress.search.paths import artifacts_dir
    from autocompress.search.pareto import nothing_feasible_line

    trials = optuna.load_study(study_name=args.study, storage=args.storage).get_trials(deepcopy=False)
    return nothing_feasible_line(
        trials, artifacts_dir(args.storage, args.artifacts), args.study, target_name, target_arg=args.target,
        storage=args.storage, artifacts=args.artifacts, out=args.out, export_format=args.export_format,
    )


def live_searches(storage: str, study: str) -> list:
    """The study's search runs still alive: on this machine by their process, elsewhere by a recent heartbeat."""
    from autocompress.search.study import HEARTBEAT_GRACE_S
    from autocompress.store import Store

    store = Store(storage)
    try:
        return store.live_runs(study, silent_after_s=HEARTBEAT_GRACE_S)
    finally:
        store.close()
