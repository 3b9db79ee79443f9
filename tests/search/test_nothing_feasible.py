"""A study where no trial is feasible: its closest trials keep their students, the search says
how to export one, and ``export --trial`` exports exactly the trials named, feasible or not."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

import autocompress.search.daemon as daemon
from autocompress.cli.main import main
from autocompress.search.pareto import export_checkpoint, export_pareto, nothing_feasible_line, trains_nothing
from autocompress.search.paths import student_dir, students_dir

MEMORY_OVER = {"memory_budget": 0.5, "rtf_budget": -0.1, "quality_floor": -0.1}


def _trial(number: int, values: list[float], constraints: dict[str, float], **attrs) -> optuna.trial.FrozenTrial:
    t = optuna.trial.create_trial(values=values, constraints=constraints, user_attrs=attrs)
    t.number = number
    return t


def _student(artifacts: Path, number: int) -> Path:
    folder = student_dir(artifacts, "s", number)
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text("{}")
    return folder


def _daemon_over(trials: list, artifacts: Path) -> daemon._Daemon:
    d = object.__new__(daemon._Daemon)
    d.r = SimpleNamespace(artifacts=artifacts, study="s")
    d.study = SimpleNamespace(get_trials=lambda deepcopy=False, states=None: [
        t for t in trials if states is None or t.state in states])
    return d


def test_while_nothing_is_feasible_the_students_of_the_unconstrained_front_are_kept(tmp_path):
    """The search deleted every infeasible trial's student, so none could ever be exported."""
    trials = [
        _trial(0, [0.9, 20.0, 300.0], MEMORY_OVER),  # on the unconstrained front (best quality)
        _trial(1, [0.5, 30.0, 400.0], MEMORY_OVER),  # dominated by trial 0
        _trial(2, [0.7, 10.0, 200.0], {"memory_budget": 0.1}),  # on the front (fastest, smallest)
    ]
    for t in trials:
        _student(tmp_path, t.number)
    d = _daemon_over(trials, tmp_path)
    d._drop_dominated_students()
    assert sorted(p.name for p in students_dir(tmp_path, "s").iterdir()) == ["trial-0000", "trial-0002"]
    trials.append(_trial(3, [0.6, 15.0, 250.0], {"memory_budget": -0.2}))  # the first feasible trial
    _student(tmp_path, 3)
    d._drop_dominated_students()
    assert [p.name for p in students_dir(tmp_path, "s").iterdir()] == ["trial-0003"]  # feasible front only


def test_the_line_names_the_closest_trials_and_the_exact_command(tmp_path):
    trials = [
        _trial(0, [0.9, 20.0, 300.0], MEMORY_OVER, infeasible_because="memory budget exceeded by 50%"),
        _trial(2, [0.7, 10.0, 200.0], {"memory_budget": 0.1}, infeasible_because="memory budget exceeded by 10%"),
        _trial(4, [0.95, 25.0, 350.0], MEMORY_OVER),  # its student is gone: not offered
        _trial(6, [0.7, 10.0, 200.0], {"memory_budget": 0.1}, repeats=2),  # trial 2's result again: named once
    ]
    _student(tmp_path, 0)
    _student(tmp_path, 2)
    line = nothing_feasible_line(trials, tmp_path, "s", "rpi5", target_arg="Raspberry Pi 5",
                                 storage="sqlite:///x/y.db", export_format="checkpoint")
    assert "\n" not in line and "no trial of study s is feasible for rpi5" in line
    assert "the closest: trial 2 (memory budget exceeded by 10%), trial 0 (memory budget exceeded by 50%)" in line
    assert "trial 4" not in line and "trial 6" not in line
    command = line.rpartition("to export one anyway: ")[2]
    assert shlex.split(command) == ["autocompress", "export", "--study", "s", "--target", "Raspberry Pi 5",
                                    "--storage", "sqlite:///x/y.db", "--export-format", "checkpoint", "--trial", "2"]
    trials.append(_trial(5, [0.1, 90.0, 900.0], {"memory_budget": -0.5}))
    assert nothing_feasible_line(trials, tmp_path, "s", "rpi5") == ""  # something is feasible: the usual front


def test_a_trial_that_did_not_complete_or_does_not_exist_is_refused_naming_the_exportable_ones(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize", "minimize"])
    study.add_trial(_trial(0, [0.9, 20.0, 300.0], MEMORY_OVER))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"failure_reason": "ValueError: nan"}))
    _student(tmp_path / "art", 0)
    out = tmp_path / "out"
    common = dict(storage=url, study_name="s", target="rtx3060", out_dir=out, artifacts=tmp_path / "art",
                  exporter=export_checkpoint)
    from autocompress.exceptions import ConfigError

    with pytest.raises(ConfigError) as e:
        export_pareto(**common, trials=[1, 7])
    assert str(e.value) == ("trial 1 did not complete (FAIL: ValueError: nan); trial 7 is not in study 's'; "
                            "trials that can be exported: 0")
    assert not out.exists()
    warnings: list[str] = []
    paths = export_pareto(**common, trials=[0, 0], warn=warnings.append)
    assert paths == [out / "trial-0000"]
    assert warnings == ["trial 0 is infeasible for rtx3060 (memory budget exceeded by 50%); exported as asked"]


def test_the_search_says_nothing_is_feasible_and_the_command_it_names_exports_the_closest(
    search_argv, tmp_path, capsys, monkeypatch
):
    """A study on a card with almost no memory: no trial can be feasible."""
    monkeypatch.setenv("COLUMNS", "1000")  # the command on one line, as a wide terminal shows it
    import autocompress.targets

    tight = tmp_path / "tight.toml"
    text = (Path(autocompress.targets.__file__).parent / "rtx3060.toml").read_text()
    tight.write_text(text.replace('name = "rtx3060"', 'name = "tight"').replace("vram_gb = 2.0", "vram_gb = 0.01"))
    argv = [str(tight) if a == "rtx3060" else a for a in search_argv(tmp_path, "--trials", "4", "--steps", "2")]
    (tmp_path / "db").mkdir()
    assert main(["search", *argv, "--export-format", "checkpoint"]) == 0
    s = SimpleNamespace(tmp=tmp_path, target=str(tight), url=f"sqlite:///{tmp_path}/db/s.db",
                        output=capsys.readouterr().out)
    assert json.loads((s.tmp / "exports" / "pareto.json").read_text())["trials"] == []  # the default: unchanged
    text = next((x for x in s.output.splitlines() if "is feasible for" in x), "")
    assert "no trial of study micro is feasible for tight; the closest: trial " in text, s.output
    command = shlex.split(text.partition("to export one anyway: ")[2].partition(" --trial ")[0])
    number = int(text.partition(" --trial ")[2].split()[0])
    assert command[:2] == ["autocompress", "export"] and command[command.index("--target") + 1] == s.target
    study = optuna.load_study(study_name="micro", storage=s.url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4 and not any(t.user_attrs["feasible"] for t in done)
    kept = sorted(p.name for p in students_dir(s.tmp / "db" / "artifacts", "micro").iterdir())
    assert f"trial-{number:04d}" in kept  # the search kept the student it offers

    assert main([*command[1:], "--trial", str(number)]) == 0
    captured = capsys.readouterr()
    reason = study.trials[number].user_attrs["infeasible_because"]
    warnings = [x for x in captured.err.splitlines() if x.startswith("warning:")]
    assert warnings == [f"warning: trial {number} is infeasible for tight ({reason}); exported as asked"]
    index = json.loads((s.tmp / "exports" / "pareto.json").read_text())
    assert [r["trial"] for r in index["trials"]] == [number] and index["asked_trials"] == [number]
    assert index["trials"][0]["feasible"] is False and index["trials"][0]["infeasible_because"] == reason
    folder = s.tmp / "exports" / f"trial-{number:04d}"
    assert (folder / "plan.json").is_file()
    assert json.loads((folder / "trial.json").read_text())["infeasible_because"] == reason

    # a fine-tuned trial's student cannot be rebuilt (the teacher baselines' can: see test_rebuilt_baseline)
    others = [t.number for t in done if t.number != number and not trains_nothing(t)]
    gone = next((n for n in others if f"trial-{n:04d}" not in kept), others[0])  # dropped by the search, or now
    shutil.rmtree(student_dir(s.tmp / "db" / "artifacts", "micro", gone), ignore_errors=True)
    kept = sorted(p.name for p in students_dir(s.tmp / "db" / "artifacts", "micro").iterdir())
    assert main([*command[1:], "--trial", str(gone)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"trial {gone}'s student is gone" in err
    can = sorted({int(k[6:]) for k in kept} | {t.number for t in done if trains_nothing(t)})
    assert {0, 1} <= set(can)  # the teacher baselines, their students kept or rebuilt from the voice files
    assert err.endswith(f"trials that can be exported: {', '.join(map(str, can))}"), err
    assert [r["trial"] for r in json.loads((s.tmp / "exports" / "pareto.json").read_text())["trials"]] == [number]
