"""``autocompress schedule add|list|remove|run-due|history`` and ``autocompress daemon``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autocompress.exceptions import ConfigError
from autocompress.schedule import (
    ScheduleSpec,
    add_schedule,
    daemon_loop,
    history,
    install_crontab,
    install_systemd,
    list_schedules,
    next_due,
    remove_schedule,
    run_due,
)
from autocompress.schedule._front import DEFAULT_STORAGE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedule", help="scheduled searches (cron)")
    ssub = p.add_subparsers(dest="schedule_command", metavar="ACTION", parser_class=type(p))

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--storage", default=DEFAULT_STORAGE, help="database URL holding the schedules")

    a = ssub.add_parser("add", help="add or update a schedule: ... -- <run_search arguments>")
    common(a)
    a.add_argument("--name", required=True)
    a.add_argument("--cron", required=True, help='cron expression, e.g. "0 2 * * *"')
    a.add_argument("--timeout", type=float, default=3600.0, help="time budget per run, seconds")
    a.add_argument("--backend", choices=["none", "crontab", "systemd"], default="none",
                   help="also install a crontab line or a systemd user timer (default: none; use 'autocompress daemon')")
    a.add_argument("search_args", nargs=argparse.REMAINDER)
    a.set_defaults(func=_add)

    ls = ssub.add_parser("list", help="list schedules")
    common(ls)
    ls.set_defaults(func=_list)

    rm = ssub.add_parser("remove", help="remove a schedule")
    common(rm)
    rm.add_argument("name")
    rm.add_argument("--backend", choices=["none", "crontab"], default="none")
    rm.set_defaults(func=_remove)

    rd = ssub.add_parser("run-due", help="run the schedules that are due now, each once")
    common(rd)
    rd.add_argument("--name", default=None, help="only this schedule")
    rd.set_defaults(func=_run_due)

    h = ssub.add_parser("history", help="past runs")
    common(h)
    h.add_argument("name", nargs="?")
    h.add_argument("--limit", type=int, default=20)
    h.set_defaults(func=_history)

    d = sub.add_parser("daemon", help="run due schedules in a long-running process")
    common(d)
    d.add_argument("--poll", type=float, default=30.0, help="seconds between checks")
    d.set_defaults(func=_daemon)


def normalise_search_args(name: str, args: list[str]) -> list[str]:
    """Check the run_search arguments of a schedule; each schedule resumes its own study."""
    args = [a for a in args if a != "--"] if args[:1] == ["--"] else list(args)
    if not any(a == "--target" or a.startswith("--target=") for a in args):
        raise ConfigError("a schedule needs run_search arguments after '--', at least --target (e.g. -- --target rtx3060)")
    if not any(a == "--study" or a.startswith("--study=") for a in args):
        args += ["--study", name]
    check_search_args(args)
    return args


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"the schedule's run_search arguments: {message}")


def check_search_args(args: list[str]) -> None:
    """Raise ``ConfigError`` now for arguments every scheduled run would reject (flags, target,
    files, space, storage URL), instead of at each run."""
    from autocompress.cli import search_cmd
    from autocompress.search import resolve

    parser = _RaisingParser(prog="run_search")
    search_cmd.register(parser.add_subparsers(dest="command", parser_class=_RaisingParser))
    resolve(search_cmd.config_from_args(parser.parse_args(["search", *args])))


def _add(args: argparse.Namespace) -> int:
    search_args = normalise_search_args(args.name, args.search_args)
    spec = ScheduleSpec(args.name, args.cron, tuple(search_args), args.timeout)
    changed = add_schedule(args.storage, spec)
    workdir = Path.cwd()
    if args.backend == "crontab":
        install_crontab(spec, spec.name, args.storage, workdir)
    elif args.backend == "systemd":
        install_systemd(spec, args.storage, workdir)
    word = "added" if changed else "unchanged"
    print(f"{spec.name}: {word}; next run {next_due(args.storage, spec.name):%Y-%m-%d %H:%M} UTC")
    return 0


def _list(args: argparse.Namespace) -> int:
    table = Table("name", "cron", "timeout s", "next run (UTC)", "run_search arguments")
    for s in list_schedules(args.storage):
        table.add_row(escape(s.name), escape(s.cron), f"{s.timeout_s:.0f}",
                      f"{next_due(args.storage, s.name):%Y-%m-%d %H:%M}", escape(" ".join(s.args)))
    Console().print(table)
    return 0


def _remove(args: argparse.Namespace) -> int:
    remove_schedule(args.storage, args.name)
    if args.backend == "crontab":
        install_crontab(None, args.name, args.storage, Path.cwd())
    print(f"{args.name}: removed")
    return 0


def _run_due(args: argparse.Namespace) -> int:
    records = run_due(args.storage, only=args.name)
    for r in records:
        print(f"{r.schedule}: {r.status}, trials added {r.trials_added}, front changed {r.front_changed}")
    return 0 if all(r.status == "ok" for r in records) else 1


def _history(args: argparse.Namespace) -> int:
    table = Table("id", "schedule", "started (UTC)", "ended", "status", "trials added", "front changed", "exports", "error")
    for r in history(args.storage, args.name, args.limit):
        table.add_row(
            str(r.id), escape(r.schedule), f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            "" if r.ended_at is None else f"{r.ended_at:%H:%M:%S}", r.status,
            "" if r.trials_added is None else str(r.trials_added),
            "" if r.front_changed is None else ("yes" if r.front_changed else "no"),
            str(len(r.exports)), escape(r.error or ""),
        )
    Console().print(table)
    return 0


def _daemon(args: argparse.Namespace) -> int:
    print(f"autocompress daemon: watching schedules in {args.storage} (Ctrl-C to stop)")
    daemon_loop(args.storage, poll_s=args.poll)
    return 0
