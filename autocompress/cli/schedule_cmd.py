"""``autocompress schedule add|list|remove|run-due|history`` and ``autocompress daemon``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from autocompress.cli.argtypes import non_negative_int, positive_float, positive_int
from autocompress.cli.console import output_console
from autocompress.exceptions import ConfigError
from autocompress.store.urls import DEFAULT_STORAGE, mask_password

# The schedule package (Optuna, SQLAlchemy) is imported by each action, not here: help stays fast.


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedule", help="scheduled searches (cron)")
    p.set_defaults(func=lambda _args: _usage(p))
    ssub = p.add_subparsers(dest="schedule_command", metavar="ACTION", parser_class=type(p))

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--storage", default=DEFAULT_STORAGE, metavar="URL",
                       help=f"database URL holding the schedules (default {DEFAULT_STORAGE})")

    a = ssub.add_parser("add", help="add or update a schedule: ... -- <run_search arguments>")
    common(a)
    a.add_argument("--name", required=True, help="the schedule's name (and its study's, unless --study is given)")
    a.add_argument("--cron", required=True, help='cron expression in UTC, e.g. "0 2 * * *" (02:00 UTC)')
    a.add_argument("--timeout", type=positive_float, default=3600.0, metavar="SECONDS",
                   help="time budget per run (default 3600; a --timeout among the search arguments overrides it)")
    a.add_argument("--keep-exports", type=non_negative_int, default=None, metavar="N",
                   help="keep the N newest export folders (runs/<time>) this schedule wrote and delete its older "
                        "ones; 0 keeps all (default: 5 for a new schedule, unchanged for an existing one)")
    a.add_argument("--backend", choices=["none", "crontab", "systemd"], default="none",
                   help="also install a crontab line or a systemd user timer (default: none; use 'autocompress daemon')")
    a.add_argument("search_args", nargs=argparse.REMAINDER, metavar="-- SEARCH_ARGS",
                   help="after '--': the arguments of 'autocompress search' each run gets, e.g. -- --target rtx3060")
    a.set_defaults(func=_add)

    ls = ssub.add_parser("list", help="list schedules")
    common(ls)
    ls.set_defaults(func=_list)

    rm = ssub.add_parser("remove", help="remove a schedule")
    common(rm)
    rm.add_argument("name", help="the schedule to remove (its past runs stay in the history)")
    rm.add_argument("--backend", choices=["none", "crontab", "systemd"], default="none",
                    help="also remove its crontab line or systemd user timer")
    rm.set_defaults(func=_remove)

    rd = ssub.add_parser("run-due", help="run the schedules that are due now, each once")
    common(rd)
    rd.add_argument("--name", default=None, help="only this schedule")
    rd.add_argument("--quiet", action="store_true",
                    help="print nothing when no schedule is due (for a crontab line or timer that wakes each minute)")
    rd.set_defaults(func=_run_due)

    h = ssub.add_parser("history", help="past runs")
    common(h)
    h.add_argument("name", nargs="?", help="only this schedule's runs (default: every schedule's)")
    h.add_argument("--limit", type=positive_int, default=20, metavar="N",
                   help="the N most recent runs, newest first (default 20)")
    h.set_defaults(func=_history)

    d = sub.add_parser("daemon", help="run due schedules in a long-running process")
    common(d)
    d.add_argument("--poll", type=positive_float, default=30.0, help="seconds between checks (default 30)")
    d.set_defaults(func=_daemon)


def _usage(parser: argparse.ArgumentParser) -> int:
    """``autocompress schedule`` without an action: its own help, and exit code 2."""
    parser.print_help()
    return 2


def normalise_search_args(name: str, args: list[str]) -> list[str]:
    """Check the run_search arguments of a schedule; each schedule resumes its own study."""
    from autocompress.schedule._args import parse_search_args

    args = [a for a in args if a != "--"] if args[:1] == ["--"] else list(args)
    if not args:
        raise ConfigError("a schedule needs run_search arguments after '--', at least --target (e.g. -- --target rtx3060)")
    if parse_search_args(args).study is None:
        from autocompress.search.config import _STUDY_NAME

        if not _STUDY_NAME.match(name):  # the study takes the schedule's name: say so, not "--study"
            raise ConfigError(
                f"--name {name!r} also names the schedule's study, which takes 1-128 letters, digits, '_', '-' or "
                "'.', starting with a letter or digit; choose such a name, or give --study NAME after '--'"
            )
        args += ["--study", name]
    check_search_args(args)
    return args


def check_search_args(args: list[str]) -> None:
    """Raise ``ConfigError`` now for arguments every scheduled run would reject (flags, target,
    files, space, storage URL), instead of at each run."""
    import dataclasses

    from autocompress.cli import search_cmd
    from autocompress.schedule._args import parse_search_args
    from autocompress.search import resolve
    from autocompress.search.paths import check_writable_dir

    config = search_cmd.config_from_args(parse_search_args(args))
    # A scheduled run exports into <out>/runs/<time> beside the earlier ones, never replacing
    # <out> whole: the search's own check of --out would refuse the folder after the first export.
    resolved = resolve(dataclasses.replace(config, export=False))
    if config.export:
        check_writable_dir(resolved.out, "--out")


def _add(args: argparse.Namespace) -> int:
    from autocompress.schedule import ScheduleSpec, add_schedule, check_backend, install_crontab, install_systemd, next_due
    from autocompress.schedule._args import parse_search_args
    from autocompress.schedule._core import DEFAULT_KEEP_EXPORTS, stored_keep_exports
    from autocompress.schedule._tables import engine_for

    search_args = normalise_search_args(args.name, args.search_args)
    workdir = Path.cwd()
    engine_for(args.storage)  # a bad --storage fails before any backend is touched
    stored = stored_keep_exports(args.storage, args.name)  # None: no schedule of this name yet
    keep = args.keep_exports
    if keep is None:  # updating a schedule without the flag must not start deleting exports it kept
        keep = DEFAULT_KEEP_EXPORTS if stored is None else stored
    spec = ScheduleSpec(args.name, args.cron, tuple(search_args), args.timeout, str(workdir), keep)
    check_backend(args.backend)
    if args.backend == "crontab":
        install_crontab(spec, spec.name, args.storage, workdir)
    elif args.backend == "systemd":
        install_systemd(spec, args.storage, workdir)
    changed = add_schedule(args.storage, spec)
    word = "unchanged" if not changed else "added" if stored is None else "updated"
    exports = "exports nothing (--no-export)" if not parse_search_args(search_args).export else (
        f"keeps {_kept(spec.keep_exports)}")
    print(f"{spec.name}: {word}; next run {next_due(args.storage, spec.name):%Y-%m-%d %H:%M} UTC; {exports}")
    if args.backend == "systemd":
        from autocompress.schedule._backends import linger_note

        note = linger_note(spec.name)
        if note:
            print(note, file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from autocompress.schedule import list_schedules, next_runs
    from autocompress.schedule._tables import utcnow

    table = Table("name", "cron", "timeout s", "next run (UTC)", "exports kept", "run_search arguments",
                  "working directory")
    times, broken = next_runs(args.storage)
    specs, now = list_schedules(args.storage), utcnow()
    for s in specs:
        when = f"{times[s.name]:%Y-%m-%d %H:%M}" if s.name in times else f"[red]never: {escape(broken[s.name])}[/red]"
        if s.name in times and times[s.name] <= now:
            when += " (due: the next run-due runs it)"
        search = escape(mask_password(" ".join(s.args)))  # a --storage URL among them: no password shown
        kept = "all" if s.keep_exports == 0 else f"newest {s.keep_exports}"
        if not _exports(s.args):
            kept = "none (--no-export)"
        table.add_row(escape(s.name), escape(s.cron), f"{_budget(s):.0f}", when, kept, search, escape(s.workdir or ""))
    listed = {s.name for s in specs}
    for name, reason in broken.items():
        if name not in listed:  # a row this version refuses to load
            table.add_row(escape(name), "", "", f"[red]cannot run: {escape(reason)}[/red]", "", "", "")
    output_console().print(table)
    return 0


def _exports(search_args: tuple[str, ...] | list[str]) -> bool:
    """Whether a schedule's runs export, read as the search reads its arguments (``--no-exp``
    is ``--no-export``); arguments this version refuses count as exporting unless they hold the flag."""
    from autocompress.schedule._args import parse_search_args

    try:
        return bool(parse_search_args(search_args).export)
    except ConfigError:
        return "--no-export" not in search_args


def _kept(keep: int) -> str:
    """What ``schedule add`` says of a schedule's export retention."""
    return "all its exports" if keep == 0 else f"its newest {keep} export{'s' if keep != 1 else ''}"


def _budget(spec) -> float:  # noqa: ANN001 - a ScheduleSpec
    from autocompress.schedule._core import time_budget

    """The seconds each run of ``spec`` gets: a --timeout among its search arguments wins."""
    try:
        return time_budget(spec)
    except ConfigError:  # arguments its runs refuse (stored by an older version): run-due says why
        return spec.timeout_s


def _remove(args: argparse.Namespace) -> int:
    from autocompress.schedule import (
        check_backend, installed_backends, remove_schedule, schedule_exists, uninstall_crontab, uninstall_systemd,
    )

    exists = schedule_exists(args.storage, args.name)
    check_backend(args.backend)
    removed = []
    if args.backend == "crontab":
        removed = ["its crontab line"] if uninstall_crontab(args.name) else []
    elif args.backend == "systemd":
        removed = [str(p) for p in uninstall_systemd(args.name)]
    else:
        for backend in installed_backends(args.name):
            print(f"note: the {backend} backend of {args.name!r} still wakes each minute; remove it with "
                  f"'autocompress schedule remove {args.name} --backend {backend}'", file=sys.stderr)
    if not exists and not removed:
        raise ConfigError(f"no schedule named {args.name!r}; see 'autocompress schedule list'")
    if exists:
        remove_schedule(args.storage, args.name)
    print(f"{args.name}: removed" + (f" ({', '.join(removed)})" if removed else ""))
    return 0


def _run_due(args: argparse.Namespace) -> int:
    from autocompress.schedule import describe_run, run_due, sigterm_interrupts

    if args.name is not None:  # what a backend runs: a database moved away must not be made again, empty, each minute
        from autocompress.store.engine import sqlite_path

        path = sqlite_path(args.storage)
        if path is not None and not path.is_file():
            raise ConfigError(f"no schedule named {args.name!r}: there is no database at {path}; if it moved, "
                              "add the schedule again with --storage naming it (and remove this one's backend)")
    broken = []

    def _report(name: str, reason: str) -> None:
        broken.append(name)
        print(f"{name}: cannot run: {reason}", file=sys.stderr)

    with sigterm_interrupts():
        records = run_due(args.storage, only=args.name, on_broken=_report)
    for r in records:
        print(describe_run(r))
    if not records and not broken and not args.quiet:
        print("no schedule is due" + (f" ({args.name!r} runs at its next cron time)" if args.name else ""))
    return 0 if not broken and all(r.status in ("ok", "skipped") for r in records) else 1


def _history(args: argparse.Namespace) -> int:
    from autocompress.schedule import history

    table = Table("id", "schedule", "started (UTC)", "ended", "status", "trials added", "failed", "pruned",
                  "front changed", "exports", "error")
    for r in history(args.storage, args.name, args.limit):
        table.add_row(
            str(r.id), escape(r.schedule), f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            "" if r.ended_at is None else f"{r.ended_at:%H:%M:%S}", r.status,
            "" if r.trials_added is None else str(r.trials_added),
            "" if r.trials_failed is None else str(r.trials_failed),
            "" if r.trials_pruned is None else str(r.trials_pruned),
            "" if r.front_changed is None else ("yes" if r.front_changed else "no"),
            str(len(r.exports)), escape(r.error or ""),
        )
    output_console().print(table)
    return 0


def _daemon(args: argparse.Namespace) -> int:
    from autocompress.schedule import daemon_loop, sigterm_interrupts
    from autocompress.schedule._tables import engine_for
    from autocompress.store import display_url

    engine_for(args.storage)  # a bad --storage fails now, in one line
    print(f"autocompress daemon: watching schedules in {display_url(args.storage)} (Ctrl-C to stop)", flush=True)
    with sigterm_interrupts():
        daemon_loop(args.storage, poll_s=args.poll)
    return 0
