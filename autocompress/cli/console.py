"""The console the commands print through: a terminal's own width, and wide lines when piped."""

from __future__ import annotations

import os

from rich.console import Console

PIPED_WIDTH = 140  # logs, cron mail and pipes: tables keep whole rows instead of Rich's 80 columns


def output_console() -> Console:
    """A Rich console on stdout: the terminal's width, ``$COLUMNS`` when set, else PIPED_WIDTH."""
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
        return console
    return Console(width=PIPED_WIDTH)
