"""The shipped search_spaces/*.toml files, and the key reference they point to."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from autocompress.search import space as space_module
from autocompress.search.space import load_space, parse_space

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.toml"))


def _documented_layout() -> str:
    """The example file of the space module's docstring (the reference the shipped files name)."""
    doc = space_module.__doc__
    block = doc[doc.index("File layout::") + len("File layout::"): doc.index("Every problem in a file")]
    return "\n".join(line[4:] for line in block.splitlines())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_space_loads_and_points_to_the_key_reference(path):
    space = load_space(path)
    assert space.name and space.groups
    assert "autocompress/search/space.py" in path.read_text()


def test_the_documented_layout_is_a_valid_space_naming_every_key():
    text = _documented_layout()
    parse_space(text, "<docstring>")  # the example is itself a valid file
    data = tomllib.loads(text)
    documented = {f"space.{k}" for k in data["space"]} | {f"finetune.{k}" for k in data["finetune"]}
    documented |= {f"groups.{k}" for g in data["groups"].values() for k in g}
    accepted = {f"space.{k}" for k in space_module._SPACE_KEYS} | {f"finetune.{k}" for k in space_module._FINETUNE_KEYS}
    accepted |= {f"groups.{k}" for k in space_module._GROUP_KEYS}
    assert documented == accepted

