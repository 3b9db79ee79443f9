"""Ways to fire schedules without root: a crontab line, a systemd user timer, or our daemon.

Each backend only wakes ``autocompress schedule run-due --name NAME``; whether the schedule
is really due, and whether another run holds its lock, is decided there, from the database.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from autocompress.exceptions import ConfigError
from autocompress.schedule._core import RunRecord, ScheduleSpec, next_runs, run_due, subprocess_runner
from autocompress.schedule._tables import utcnow
from autocompress.store import database_reason

TAG = "# autocompress-schedule:"


BACKEND_TOOLS = {"crontab": "crontab", "systemd": "systemctl"}


def check_backend(backend: str) -> None:
    """Raise ``ConfigError`` when ``backend`` cannot be installed or removed here."""
    tool = BACKEND_TOOLS.get(backend)
    if tool is not None and shutil.which(tool) is None:
        other = "systemd" if backend == "crontab" else "crontab"
        raise ConfigError(f"no {tool!r} command here for --backend {backend}; use --backend {other} or 'autocompress daemon'")


def run_due_command(storage: str, name: str, workdir: Path) -> str:
    """The shell command a backend runs each minute: quiet unless the schedule is due."""
    return (
        f"cd {shlex.quote(str(workdir))} && {shlex.quote(sys.executable)} -m autocompress "
        f"schedule run-due --quiet --storage {shlex.quote(storage)} --name {shlex.quote(name)}"
    )


LOG_MAX_KIB = 10 * 1024  # a crontab log larger than this is moved to <log>.1 (replacing it) before a run


def log_path(name: str, workdir: Path) -> Path:
    """Where the crontab line appends a schedule's output."""
    return workdir / "db" / f"schedule-{name}.log"


def crontab_line(spec: ScheduleSpec, storage: str, workdir: Path) -> str:
    """A minutely line, as the systemd timer: cron reads its fields in local time, a schedule's
    cron expression is UTC, so the database (run-due) decides when it is due. The log's folder
    is created first: without it the shell would fail before the scheduler starts. A log past
    ``LOG_MAX_KIB`` becomes ``<log>.1``, so weeks of nightly runs keep at most two."""
    log = shlex.quote(str(log_path(spec.name, workdir)))
    rotate = f"{{ find {log} -size +{LOG_MAX_KIB}k -exec mv -f {log} {log}.1 ';' 2>/dev/null || true; }}"
    command = (
        f"mkdir -p {shlex.quote(str(log_path(spec.name, workdir).parent))} && {rotate} && "
        f"{run_due_command(storage, spec.name, workdir)} >> {log} 2>&1"
    )
    return f"* * * * * {_cron_escape(command)} {TAG}{spec.name}"


def _cron_escape(command: str) -> str:
    """``command`` as a crontab line must spell it: cron ends a command at a bare ``%`` (a
    percent-encoded password in a --storage URL, a folder name)."""
    return command.replace("%", "\\%")


def _tagged(line: str, name: str) -> bool:
    """Whether a crontab line is the one written for schedule ``name``."""
    return line.rstrip().endswith(f"{TAG}{name}")


def merge_crontab(existing: str, name: str, line: str | None) -> str:
    """Replace (or with ``line=None`` remove) the line tagged for ``name``; keep the rest."""
    kept = [ln for ln in existing.splitlines() if not _tagged(ln, name)]
    if line is not None:
        kept.append(line)
    return "\n".join(kept) + ("\n" if kept else "")


def install_crontab(spec: ScheduleSpec | None, name: str, storage: str, workdir: Path) -> str:
    """Write (or remove, for ``spec=None``) the user's crontab line for a schedule.

    Raises:
        ConfigError: when there is no ``crontab`` command or it refuses the new table.
    """
    check_backend("crontab")
    if spec is not None:
        log_path(name, workdir).parent.mkdir(parents=True, exist_ok=True)
    existing = _current_crontab()
    line = None if spec is None else crontab_line(spec, storage, workdir)
    new = merge_crontab(existing, name, line)
    if new == existing:
        return new
    done = subprocess.run(["crontab", "-"], input=new, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"crontab refused the new table: {_last_line(done.stderr, done.returncode)}")
    return new


def _current_crontab() -> str:
    """The user's crontab ("" when there is none yet).

    Raises:
        ConfigError: ``crontab -l`` failed for another reason: writing a table then would
            replace every line the user has.
    """
    cur = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    if cur.returncode == 0:
        return cur.stdout
    if "no crontab" in cur.stderr.lower():  # vixie cron, cronie and busybox all say "no crontab for USER"
        return ""
    raise ConfigError(
        f"cannot read the current crontab, so it is left as it is: {_last_line(cur.stderr, cur.returncode)}"
    )


def uninstall_crontab(name: str) -> bool:
    """Remove the user's crontab line for a schedule; return whether there was one."""
    check_backend("crontab")
    had = _crontab_has(name)
    install_crontab(None, name, "", Path.cwd())
    return had


def _crontab_has(name: str) -> bool:
    """Whether the user's crontab holds the line of schedule ``name`` (False when it cannot be read)."""
    try:
        return any(_tagged(ln, name) for ln in _current_crontab().splitlines())
    except ConfigError:
        return False


def installed_backends(name: str, unit_dir: Path | None = None) -> list[str]:
    """The backends (``crontab``, ``systemd``) installed here that still wake a schedule's runs."""
    found = []
    if shutil.which("crontab") is not None and _crontab_has(name):
        found.append("crontab")
    if (_unit_dir(unit_dir) / f"autocompress-{name}.timer").exists():
        found.append("systemd")
    return found


def _last_line(text: str, code: int) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {code}"


def systemd_units(spec: ScheduleSpec, storage: str, workdir: Path) -> dict[str, str]:
    """A oneshot service and a minutely timer; the database decides when it is due."""
    unit = f"autocompress-{spec.name}"
    service = (
        "[Unit]\nDescription=autocompress scheduled search " + spec.name + "\n\n"
        "[Service]\nType=oneshot\n"
        f"ExecStart=/bin/sh -c {_systemd_word(run_due_command(storage, spec.name, workdir))}\n"
    )
    timer = (
        "[Unit]\nDescription=autocompress schedule " + spec.name + f" ({spec.cron})\n\n"
        "[Timer]\nOnCalendar=minutely\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
    )
    return {f"{unit}.service": service, f"{unit}.timer": timer}


def _systemd_word(text: str) -> str:
    """``text`` as one argument of a unit's command line: systemd takes a quoted word whole only
    when it is quoted whole, reads C escapes in it, and expands ``%`` specifiers and ``$``
    variables even there."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def _systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"systemctl --user {' '.join(args)} failed: {_last_line(done.stderr, done.returncode)}")


def _unit_dir(unit_dir: Path | None) -> Path:
    return unit_dir or Path.home() / ".config" / "systemd" / "user"


def install_systemd(spec: ScheduleSpec, storage: str, workdir: Path, unit_dir: Path | None = None) -> list[Path]:
    """Write a schedule's service and timer units and enable the timer; return the unit files.

    Raises:
        ConfigError: when there is no ``systemctl`` or it fails (the unit files are then removed).
    """
    check_backend("systemd")
    unit_dir = _unit_dir(unit_dir)
    unit_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in systemd_units(spec, storage, workdir).items():
        path = unit_dir / fname
        path.write_text(text)
        written.append(path)
    try:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", f"autocompress-{spec.name}.timer")
    except ConfigError:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def linger_note(name: str) -> str | None:
    """A note for when systemd stops this user's timers at logout (lingering is off), so that
    schedule ``name`` would run only while its user is logged in; None when it keeps them."""
    if shutil.which("loginctl") is None:
        return None
    try:
        done = subprocess.run(
            ["loginctl", "show-user", str(os.getuid()), "--property=Linger", "--value"],
            capture_output=True, text=True, check=False, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or done.stdout.strip() != "no":
        return None
    return (f"note: systemd stops your user timers when you log out, so {name!r} runs only while you are "
            "logged in; run 'loginctl enable-linger' to keep it running")


def uninstall_systemd(name: str, unit_dir: Path | None = None) -> list[Path]:
    """Stop and disable a schedule's timer and delete its unit files; return the files deleted.

    Raises:
        ConfigError: when there is no ``systemctl`` or it cannot disable a timer that exists.
    """
    check_backend("systemd")
    unit_dir = _unit_dir(unit_dir)
    unit = f"autocompress-{name}"
    paths = [unit_dir / f"{unit}.timer", unit_dir / f"{unit}.service"]
    present = [p for p in paths if p.exists()]
    if not present:
        return []
    if paths[0].exists():
        _systemctl("disable", "--now", f"{unit}.timer")
    for path in present:
        path.unlink()
    _systemctl("daemon-reload")
    return present


def log_line(text: str) -> None:
    """Print one line of the daemon's log at once: redirected to a file, stdout would hold it
    back for hours, behind the searches' own output."""
    print(text, flush=True)


def daemon_loop(
    storage: str,
    poll_s: float = 30.0,
    max_cycles: int | None = None,
    runner: Callable = subprocess_runner,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = log_line,
) -> int:
    """Run due schedules forever (or ``max_cycles`` times); return the number of runs made.

    A schedule that cannot run is logged once and the others go on; a database out of reach
    is logged once and tried again at each poll.
    """
    runs = 0
    cycle = 0
    reported: dict[str, str] = {}
    db_error: str | None = None

    def _broken(name: str, reason: str) -> None:  # said once, not at every poll
        if reported.get(name) != reason:
            reported[name] = reason
            log(f"{name}: cannot run: {reason}")

    while max_cycles is None or cycle < max_cycles:
        cycle += 1
        try:
            for rec in run_due(storage, runner=runner, on_broken=_broken):
                runs += 1
                log(describe_run(rec))
            times, _ = next_runs(storage)
            db_error = None
        except SQLAlchemyError as e:  # restarting, or the network is down: the daemon must outlive it
            times = {}
            if db_error != database_reason(e):
                db_error = database_reason(e)
                log(f"cannot use the schedules' database, trying again every {poll_s:g} s: {db_error}")
        now = utcnow()
        wait = poll_s
        if times:
            soonest = min(times.values())
            wait = max(1.0, min(poll_s, (soonest - now) / dt.timedelta(seconds=1)))
        if max_cycles is None or cycle < max_cycles:
            sleep(wait)
    return runs


def describe_run(rec: RunRecord) -> str:
    """One line about a finished run, for logs."""
    text = f"{rec.schedule}: {rec.status}"
    if rec.trials_added is not None:
        text += (f", trials added {rec.trials_added} ({rec.trials_failed or 0} failed, {rec.trials_pruned or 0} pruned)"
                 f", front changed {rec.front_changed}, {len(rec.exports)} exported")
    if rec.error:
        text += f": {rec.error}"
    return text
