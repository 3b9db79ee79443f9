"""Ways to fire schedules without root: a crontab line, a systemd user timer, or our daemon.

Each backend only wakes ``autocompress schedule run-due --name NAME``; whether the schedule
is really due, and whether another run holds its lock, is decided there, from the database.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from autocompress.exceptions import ConfigError
from autocompress.schedule._core import ScheduleSpec, list_schedules, next_due, run_due, subprocess_runner
from autocompress.schedule._tables import utcnow

TAG = "# autocompress-schedule:"


def run_due_command(storage: str, name: str, workdir: Path) -> str:
    return (
        f"cd {shlex.quote(str(workdir))} && {shlex.quote(sys.executable)} -m autocompress "
        f"schedule run-due --storage {shlex.quote(storage)} --name {shlex.quote(name)}"
    )


def crontab_line(spec: ScheduleSpec, storage: str, workdir: Path) -> str:
    """A minutely line, as the systemd timer: cron reads its fields in local time, a schedule's
    cron expression is UTC, so the database (run-due) decides when it is due."""
    log = shlex.quote(str(workdir / "db" / f"schedule-{spec.name}.log"))
    return f"* * * * * {run_due_command(storage, spec.name, workdir)} >> {log} 2>&1 {TAG}{spec.name}"


def merge_crontab(existing: str, name: str, line: str | None) -> str:
    """Replace (or with ``line=None`` remove) the line tagged for ``name``; keep the rest."""
    kept = [ln for ln in existing.splitlines() if not ln.rstrip().endswith(f"{TAG}{name}")]
    if line is not None:
        kept.append(line)
    return "\n".join(kept) + ("\n" if kept else "")


def install_crontab(spec: ScheduleSpec | None, name: str, storage: str, workdir: Path) -> str:
    """Write (or remove, for ``spec=None``) the user's crontab line for a schedule."""
    if shutil.which("crontab") is None:
        raise ConfigError("no 'crontab' command here; use --backend systemd or 'autocompress daemon'")
    cur = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    existing = cur.stdout if cur.returncode == 0 else ""
    line = None if spec is None else crontab_line(spec, storage, workdir)
    new = merge_crontab(existing, name, line)
    subprocess.run(["crontab", "-"], input=new, text=True, check=True)
    return new


def systemd_units(spec: ScheduleSpec, storage: str, workdir: Path) -> dict[str, str]:
    """A oneshot service and a minutely timer; the database decides when it is due."""
    unit = f"autocompress-{spec.name}"
    service = (
        "[Unit]\nDescription=autocompress scheduled search " + spec.name + "\n\n"
        "[Service]\nType=oneshot\n"
        f"ExecStart=/bin/sh -c {shlex.quote(run_due_command(storage, spec.name, workdir))}\n"
    )
    timer = (
        "[Unit]\nDescription=autocompress schedule " + spec.name + f" ({spec.cron})\n\n"
        "[Timer]\nOnCalendar=minutely\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
    )
    return {f"{unit}.service": service, f"{unit}.timer": timer}


def install_systemd(spec: ScheduleSpec, storage: str, workdir: Path, unit_dir: Path | None = None) -> list[Path]:
    unit_dir = unit_dir or Path.home() / ".config" / "systemd" / "user"
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in systemd_units(spec, storage, workdir).items():
        path = unit_dir / fname
        path.write_text(text)
        written.append(path)
    if shutil.which("systemctl"):
        subprocess.run(["systemctl", "--user", "daemon-reload"], check=False, capture_output=True)
        subprocess.run(
            ["systemctl", "--user", "enable", "--now", f"autocompress-{spec.name}.timer"],
            check=False, capture_output=True,
        )
    return written


def daemon_loop(
    storage: str,
    poll_s: float = 30.0,
    max_cycles: int | None = None,
    runner: Callable = subprocess_runner,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> int:
    """Run due schedules forever (or ``max_cycles`` times); return the number of runs made."""
    runs = 0
    cycle = 0
    while max_cycles is None or cycle < max_cycles:
        cycle += 1
        for rec in run_due(storage, runner=runner):
            runs += 1
            log(f"{rec.schedule}: {rec.status} (trials added: {rec.trials_added}, front changed: {rec.front_changed})")
        specs = list_schedules(storage)
        now = utcnow()
        wait = poll_s
        if specs:
            soonest = min(next_due(storage, s.name, now) for s in specs)
            wait = max(1.0, min(poll_s, (soonest - now) / dt.timedelta(seconds=1)))
        if max_cycles is None or cycle < max_cycles:
            sleep(wait)
    return runs
