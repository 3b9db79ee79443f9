"""SIGTERM as Ctrl-C: long commands (a search, the scheduler) stop the same way for both."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises ``KeyboardInterrupt``."""


def exit_code(interrupt: BaseException | None) -> int:
    """The conventional exit status of a command stopped by ``interrupt``: 143 (128 + 15) for
    SIGTERM, 130 (128 + 2) for Ctrl-C."""
    return 128 + signal.SIGTERM if isinstance(interrupt, Terminated) else 128 + signal.SIGINT


def signal_name(interrupt: BaseException | None) -> str:
    """What stopped a command, as a user would say it: "SIGTERM" or "Ctrl-C"."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "Ctrl-C"


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) as Ctrl-C
    raises ``KeyboardInterrupt`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _interrupt(signum: int, _frame: object) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Within the block, a Ctrl-C (or SIGTERM, under :func:`sigterm_interrupts`) is raised only
    when the block ends, so that it cannot cut short what the block records; a second one is
    raised at once (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[KeyboardInterrupt] = []

    def _defer(signum: int, _frame: object) -> None:
        interrupt = Terminated(f"signal {signum}") if signum == signal.SIGTERM else KeyboardInterrupt()
        if pending:
            raise interrupt
        pending.append(interrupt)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(signum)):  # one that raises; an ignored or fatal signal stays as it is
            previous[signum] = signal.signal(signum, _defer)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        raise pending[0]


__all__ = ["Terminated", "deferred_interrupts", "exit_code", "sigterm_interrupts", "signal_name"]
