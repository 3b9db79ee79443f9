"""What a search says while it runs outside its trials, and how it labels its figures."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autocompress.cli.main import main


@pytest.fixture(scope="module")
def one_trial_search(search_argv, tmp_path_factory) -> tuple[Path, str]:
    """A one-trial search of the micro voice that exports checkpoints; its folder and its stdout."""
    tmp = tmp_path_factory.mktemp("progress")
    capture = pytest.MonkeyPatch()
    import io
    import sys

    out = io.StringIO()
    capture.setattr(sys, "stdout", out)
    try:
        code = main(["search", *search_argv(tmp, "--trials", "1", "--steps", "0", "--export-format", "checkpoint")])
    finally:
        capture.undo()
    assert code == 0, out.getvalue()[-2000:]
    return tmp, out.getvalue()


def test_the_voice_and_teacher_cache_loading_are_announced_before_the_first_trial(one_trial_search):
    """Nothing was printed while the voice loaded and the teacher cache was built: half a minute
    on the demo, minutes for a full-size voice."""
    _, out = one_trial_search
    lines = out.splitlines()
    before = lines[: next(i for i, line in enumerate(lines) if line.startswith("autocompress search"))]
    assert before and before[0].strip() == "loading the voice ..."
    assert any(line.strip().startswith("building the teacher cache") for line in before), before
    assert any("teacher cache: speaking sentence 1 of " in line for line in before), before
    assert any("teacher cache: scoring the teacher's speech" in line for line in before), before


def test_the_export_at_the_end_of_a_search_says_which_trial_it_is_exporting(one_trial_search):
    """The export printed nothing until every bundle was written (minutes a bundle at full size)."""
    tmp, out = one_trial_search
    exported = [line for line in out.splitlines() if line.startswith("exported ")]
    starts = [line for line in out.splitlines() if "export: trial " in line and "exporting checkpoints ..." in line]
    assert exported and len(starts) == len(exported), out
    assert f"(1 of {len(exported)})" in starts[0]


def test_the_dashboard_note_says_how_each_objective_was_obtained(one_trial_search):
    """The note gave target, budgets, voice and space; the dashboard shows the objectives by
    name only, so whether each was measured or projected was nowhere to be seen there."""
    from optuna_dashboard._note import get_note_from_system_attrs

    tmp, _ = one_trial_search
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp}/db/s.db")
    note = get_note_from_system_attrs(study._storage.get_study_system_attrs(study._study_id), None)["body"]
    for text in (note, study.user_attrs["summary"]):
        line = next(x for x in text.splitlines() if x.startswith("objectives: "))
        assert "quality measured on " in line, line
        assert "latency_ms projected for rtx3060" in line and "memory_mb projected for rtx3060" in line, line


def test_a_trial_line_says_its_quality_was_measured(one_trial_search):
    """Latency and memory said measured or projected; the quality beside them said neither."""
    _, out = one_trial_search
    line = next(x for x in out.splitlines() if "trial 0: quality" in x)
    assert "trial 0: quality " in line and line.split("quality ")[1].split()[1] == "(measured)", line


def test_a_cpu_search_with_the_spaces_gpu_sized_steps_is_warned(search_argv, micro_voice, tmp_path, monkeypatch, capsys):
    """An own voice got the space's 5000 fine-tune steps a trial on a CPU, hours a trial, without a word."""
    import autocompress.search as search_pkg
    from autocompress.search.progress import SearchSummary

    monkeypatch.setattr(search_pkg, "run_search",
                        lambda resolved, reporter: SearchSummary(study="micro", target="rtx3060", status="finished", rows=()))
    big = tmp_path / "big.toml"
    big.write_text(micro_voice["space"].read_text().replace("steps = 4", "steps = 5000"))

    def warnings(space: Path, *extra: str) -> list[str]:
        argv = search_argv(tmp_path, "--device", "cpu", "--no-export", *extra)
        argv[argv.index("--space") + 1] = str(space)
        assert main(["search", *argv]) == 0
        return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]

    (line,) = warnings(big)
    assert "5000 fine-tune steps per trial" in line and "on a CPU" in line and "about 21 h per trial" in line
    assert "--steps N" in line
    assert warnings(big, "--steps", "5000") == []  # asked for: the user knows
    assert warnings(micro_voice["space"]) == []  # a CPU-sized default (the demo's 40 steps take seconds)
    from types import SimpleNamespace

    from autocompress.cli.search_cmd import cpu_steps_warning

    assert cpu_steps_warning(SimpleNamespace(device="cuda", steps=5000, config=SimpleNamespace(steps=None))) == ""
