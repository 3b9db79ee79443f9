"""Stand-ins for the system tools the schedule backends call (crontab, systemctl)."""

from __future__ import annotations

import stat
from pathlib import Path


def fake_crontab(table: Path) -> str:
    """A ``crontab`` that keeps the table in a file and answers ``-l`` as cron does when there is none."""
    return (f'if [ "$1" = "-l" ]; then if [ -f {table} ]; then cat {table}; '
            f'else echo "no crontab for $(id -un)" >&2; exit 1; fi; else cat > {table}; fi\n')


def tool(folder: Path, name: str, body: str) -> None:
    """Write an executable shell script ``folder/name`` with ``body``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def exit_code(argv: list[str]) -> int:
    """The exit code of ``autocompress ARGV``, also when argparse exits."""
    from autocompress.cli.main import main

    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)
