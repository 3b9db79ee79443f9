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


def test_readme_quotes_the_demo_voices_measured_quality():
    """The figures README gives for the demo voice are the ones its demo.json records."""
    from autocompress.models.gpt_sovits.demo import demo_voice_manifest

    text = " ".join((ROOT / "README.md").read_text().split())
    found = re.search(
        r"DistillMOS ([\d.]+) against its Piper source's ([\d.]+), word error rate ([\d.]+) against ([\d.]+),"
        r" speaker cosine ([\d.]+), measured on (\d+) held-out sentences", text)  # fmt: skip
    assert found, "README's sentence on the demo voice's quality has changed form"
    q = demo_voice_manifest()["quality_measured"]
    expect = [q["distillmos_teacher"], q["distillmos_source"], q["wer_teacher"], q["wer_source"], q["speaker_cosine"]]
    assert list(found.groups()[:5]) == [f"{v:.2f}" for v in expect]
    assert int(found.group(6)) == q["n_sentences"]
