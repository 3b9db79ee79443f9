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


def _all_options(parser) -> set[str]:  # noqa: ANN001
    import argparse

    out = set()
    for action in parser._actions:
        out.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _all_options(sub)
    return out


def _readme_commands() -> list[list[str]]:
    """Every ``autocompress ...`` and ``python run_search.py ...`` of the README's bash blocks, as argv."""
    import shlex

    commands = []
    for block in _bash_blocks((ROOT / "README.md").read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:1] == ["autocompress"]:
                    commands.append(words[1:])
                elif words[:2] == ["python", "run_search.py"]:
                    commands.append(["search", *words[2:]])
    return commands


def test_every_readme_command_parses():
    from autocompress.cli.main import build_parser

    commands = _readme_commands()
    assert len(commands) >= 10
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as e:  # argparse: a flag or command the CLI does not have
            raise AssertionError(f"README command 'autocompress {' '.join(argv)}' does not parse") from e


def test_every_flag_the_readme_names_exists():
    from autocompress.cli.main import build_parser

    text = (ROOT / "README.md").read_text()
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
    bench = {f for p in (ROOT / "bench").glob("*.py") for f in re.findall(r'add_argument\("(--[a-z0-9-]+)"', p.read_text())}
    pip = {"--no-deps"}
    unknown = named - _all_options(build_parser()) - bench - pip
    assert not unknown, f"README names flags nothing has: {sorted(unknown)}"


def test_readme_lists_every_search_flag():
    from autocompress.cli.main import build_parser

    parser = build_parser()
    search = next(a for a in parser._actions if a.option_strings == [] and hasattr(a, "choices")).choices["search"]
    text = " ".join((ROOT / "README.md").read_text().split())
    listed = text[text.index("All flags:"): text.index("`autocompress search ...` is the same command")]
    missing = sorted(o for o in _all_options(search) if o.startswith("--") and o != "--help" and f"`{o}" not in listed
                     and f"/{o}" not in listed)
    assert not missing, f"README's 'All flags' of the search lacks {missing}"


def test_readme_quick_start_figures_are_the_demo_spaces():
    """'It runs N trials of M fine-tune steps each' is what search_spaces/demo.toml says."""
    import tomllib

    space = tomllib.loads((ROOT / "search_spaces" / "demo.toml").read_text())["space"]
    text = " ".join((ROOT / "README.md").read_text().split())
    found = re.search(r"It runs (\d+) trials of (\d+) fine-tune steps each", text)
    assert found, "README's quick-start sentence has changed form"
    assert (int(found.group(1)), int(found.group(2))) == (space["trials"], space["steps"])


def test_every_cli_argument_says_what_it_is():
    """``--help`` describes every argument of every command (no bare ``--limit LIMIT``)."""
    import argparse

    from autocompress.cli.main import build_parser

    bare = []

    def walk(parser, path):  # noqa: ANN001
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not action.help:
                bare.append(" ".join([*path, *(action.option_strings or [action.dest])]))

    walk(build_parser(), ["autocompress"])
    assert not bare, f"arguments without help: {bare}"
