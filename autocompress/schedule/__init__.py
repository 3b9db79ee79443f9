"""Nightly (or any cron) searches that resume their studies and re-export only on change."""

from __future__ import annotations

from autocompress.schedule._backends import (
    crontab_line,
    daemon_loop,
    install_crontab,
    install_systemd,
    merge_crontab,
    systemd_units,
)
from autocompress.schedule._core import (
    RunOutcome,
    RunRecord,
    ScheduleSpec,
    acquire_lock,
    add_schedule,
    due_schedules,
    history,
    list_schedules,
    next_due,
    release_lock,
    remove_schedule,
    run_due,
    run_schedule,
    search_command,
    subprocess_runner,
)
from autocompress.schedule._front import (
    FrontSignature,
    export_if_changed,
    front_signature,
    switch_latest,
)

__all__ = [
    "FrontSignature",
    "RunOutcome",
    "RunRecord",
    "ScheduleSpec",
    "acquire_lock",
    "add_schedule",
    "crontab_line",
    "daemon_loop",
    "due_schedules",
    "export_if_changed",
    "front_signature",
    "history",
    "install_crontab",
    "install_systemd",
    "list_schedules",
    "merge_crontab",
    "next_due",
    "release_lock",
    "remove_schedule",
    "run_due",
    "run_schedule",
    "search_command",
    "subprocess_runner",
    "switch_latest",
    "systemd_units",
]
