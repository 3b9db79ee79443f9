"""``autocompress`` entry point: registers one subcommand per module in this package.

Each subcommand module exposes ``register(subparsers) -> None``; the parser it adds sets
``func=run`` where ``run(args) -> int`` is the exit code. Errors derived from
:class:`~autocompress.exceptions.AutocompressError` print as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from autocompress.exceptions import AutocompressError, CheckpointError, ConfigError, DataError
from autocompress.interrupts import exit_code

# Subcommand modules, imported only when the CLI starts (keeps ``import autocompress`` light).
COMMANDS = [
    "autocompress.cli.inspect_cmd",
    "autocompress.cli.targets_cmd",
    "autocompress.cli.schedule_cmd",
    "autocompress.cli.report_cmd",
    "autocompress.cli.search_cmd",
    "autocompress.cli.export_cmd",
    "autocompress.cli.dashboard_cmd",
    "autocompress.cli.synth_cmd",
]

# Bad input (flags, files, targets, configs) exits 2, like argparse; anything else exits 1.
_USAGE_ERRORS = (ConfigError, CheckpointError, DataError)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="autocompress",
        description="Compression search for GPT-SoVITS voices: search, export, report, synth and schedule. "
        "'autocompress COMMAND --help' describes each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ImportError as e:  # a light install (the bundle runtime alone) lacks this command's packages
            _register_unavailable(sub, name.rsplit(".", 1)[1].removesuffix("_cmd"), e.name or str(e))
            continue
        module.register(sub)
    return parser


def _register_unavailable(sub, command: str, package: str) -> None:  # noqa: ANN001
    """A subcommand whose packages are missing: it parses anything and says what to install."""

    def run(args: argparse.Namespace) -> int:
        raise ConfigError(
            f"autocompress {command} needs the package {package!r}, which this install lacks; "
            "install autocompress with its dependencies (pip install autocompress)"
        )

    # no option prefix: every argument, flags included, lands in "rest"
    p = sub.add_parser(command, help=f"(unavailable here: needs {package})", add_help=False, prefix_chars="\0")
    p.add_argument("rest", nargs="*")
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports every command's modules: seconds, and Ctrl-C may come meanwhile
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_guarded(args.func, args)


def run_guarded(func, args) -> int:  # noqa: ANN001
    """Run a subcommand, turning our errors into one line on stderr."""
    try:
        return int(func(args) or 0)
    except AutocompressError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2 if isinstance(e, _USAGE_ERRORS) else 1
    except KeyboardInterrupt as e:  # SIGTERM too, under sigterm_interrupts (the search, the scheduler)
        sys.stderr.write("interrupted\n")
        return exit_code(e)
    except OSError as e:  # a path the system refused: say which and why, in one line
        where = f"{e.filename}: " if e.filename else ""
        sys.stderr.write(f"error: {where}{e.strerror or e}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
