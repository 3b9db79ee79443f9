"""The README's test command is what CI runs, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    test_cmds = [b for b in blocks if "pytest" in b]
    assert len(test_cmds) == 1, "README must have exactly one test command block"
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmds[0] in ci_lines


def test_readme_opens_with_the_main_job():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert "python run_search.py --target rtx3060" in blocks[0]


def test_readme_names_every_shipped_target():
    from autocompress.targets import list_targets

    text = (ROOT / "README.md").read_text()
    missing = [name for name in list_targets() if f"`{name}`" not in text]
    assert not missing, f"README's target list lacks {missing}"
