"""Hardware targets as data: one TOML file per device, loaded into a frozen :class:`Target`."""

from __future__ import annotations

from autocompress.targets._target import OP_KINDS
from autocompress.targets._target import PRECISION_BITS
from autocompress.targets._target import PRECISIONS
from autocompress.targets._target import RUNTIMES
from autocompress.targets._target import Target
from autocompress.targets._target import list_targets
from autocompress.targets._target import load_target
from autocompress.targets._target import probe_host
from autocompress.targets._target import target_from_toml

__all__ = [
    "OP_KINDS",
    "PRECISIONS",
    "PRECISION_BITS",
    "RUNTIMES",
    "Target",
    "list_targets",
    "load_target",
    "probe_host",
    "target_from_toml",
]
