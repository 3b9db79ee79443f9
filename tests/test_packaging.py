"""pyproject.toml's metadata agrees with the code it ships."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Standard-library modules newer than some Pythons pip could otherwise install us on.
_STDLIB_SINCE = {"tomllib": (3, 11)}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_requires_python_covers_the_standard_library_the_package_imports():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    found = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert found, f"requires-python {spec!r} is not of the form '>=X.Y'"
    floor = (int(found.group(1)), int(found.group(2)))
    needs = {}
    for path in (ROOT / "autocompress").rglob("*.py"):
        for module in _imported_modules(path) & set(_STDLIB_SINCE):
            needs.setdefault(module, path.relative_to(ROOT))
    too_new = {m: str(p) for m, p in needs.items() if _STDLIB_SINCE[m] > floor}
    assert not too_new, f"requires-python {spec} but the package imports {too_new}"
