"""Package attributes imported from their modules on first access (keeps package imports light)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, locations: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name of ``locations`` (name ->
    module) when it is first read, and keeps it on the package."""

    def __getattr__(name: str) -> Any:
        if name in locations:
            value = getattr(importlib.import_module(locations[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
