"""A schedule's ``run_search`` arguments, read with the search command's own parser.

Every run rebuilds the child's command line from the parsed values, so a flag is honoured
however it was spelled (``--timeout=100``, an abbreviation such as ``--trial 2``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from autocompress.exceptions import ConfigError


class _RaisingParser(argparse.ArgumentParser):
    """A parser whose errors are a ``ConfigError`` about the schedule's search arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"the schedule's run_search arguments: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise ConfigError("the schedule's run_search arguments: --help and --version are not search settings")


def search_parser() -> argparse.ArgumentParser:
    """The parser of ``autocompress search`` (the same flags, types and defaults)."""
    from autocompress.cli import search_cmd

    root = _RaisingParser(prog="autocompress")
    sub = root.add_subparsers(dest="command", parser_class=_RaisingParser)
    search_cmd.register(sub)
    return sub.choices["search"]


def parse_search_args(args: Sequence[str]) -> argparse.Namespace:
    """The values ``autocompress search`` reads from ``args``.

    Raises:
        ConfigError: when the search command would refuse ``args``.
    """
    return search_parser().parse_args(list(args))


def search_argv(ns: argparse.Namespace, **overrides: object) -> list[str]:
    """Arguments that give ``autocompress search`` the values of ``ns``, with ``overrides``
    (by destination, e.g. ``trials=25``) replacing some; values left at their default are omitted."""
    values = {**vars(ns), **overrides}
    argv: list[str] = []
    for action in search_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = values.get(action.dest, action.default)
        if value is None or value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreFalseAction | argparse._StoreTrueAction):
            argv.append(flag)
        else:
            argv += [flag, _text(value)]
    return argv


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def in_dir(workdir: Path, path: Path | str) -> Path:
    """``path`` as seen from ``workdir`` (absolute paths are kept)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else workdir / p


def storage_in_dir(workdir: Path, url: str) -> str:
    """``url`` with a relative SQLite file made absolute from ``workdir``."""
    from autocompress.store.engine import parse_url, sqlite_path

    path = sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    return parse_url(url).set(database=str(workdir / path)).render_as_string(hide_password=False)
