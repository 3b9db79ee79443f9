"""Reliability of the daemon: failing trials, Ctrl-C, kill -9 and resume, identity checks."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import autocompress.search.finetune as finetune_mod
from autocompress.cli.main import main
from autocompress.search.study import SCORING_VERSION, identity, open_storage, open_study

POLL_S = 0.2
WAIT_S = 300  # generous: the test machine may be busy


def _trial_states(db: Path) -> dict[int, str]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=30) as c:
            return dict(c.execute("SELECT trial_number, state FROM ac_trials").fetchall())
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def _wait_for(db: Path, proc: subprocess.Popen, pred, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if pred(_trial_states(db)):
            return
        if proc.poll() is not None:
            pytest.fail(f"the search exited ({proc.returncode}) before {what}")
        time.sleep(POLL_S)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def test_a_nan_trial_is_recorded_fail_and_the_search_goes_on(search_argv, tmp_path, monkeypatch):
    real = finetune_mod.gpt_distill_loss
    calls = []

    def nan_once(*args, **kwargs):
        loss = real(*args, **kwargs)
        calls.append(1)
        return loss * math.nan if len(calls) == 1 else loss

    monkeypatch.setattr(finetune_mod, "gpt_distill_loss", nan_once)
    assert main(["search", *search_argv(tmp_path, "--trials", "4", "--steps", "2", "--no-export")]) == 0
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    failed = study.trials[2]
    assert failed.user_attrs["baseline"] == "seed_recipe"
    assert "NaN" in failed.user_attrs["failure_reason"] or "nan" in failed.user_attrs["failure_reason"]
    from autocompress.store import Store

    row = Store(f"sqlite:///{tmp_path}/db/s.db").trial("micro", 2)
    assert row.state == "FAIL" and "nan" in row.failure_reason.lower()


def test_kill_9_then_ctrl_c_then_resume(search_argv, run_search_cmd, micro_voice, tmp_path):
    cmd, env = run_search_cmd
    scratch = tmp_path / "tmp"  # the workers' temporary folder, where each trial has a scratch folder
    scratch.mkdir()
    env = {**env, "TMPDIR": str(scratch)}
    # the seed recipe must still be fine-tuning when the signals come, on however fast a machine:
    # many steps, and no early stop for convergence
    slow = tmp_path / "slow-space.toml"
    slow.write_text(micro_voice["space"].read_text().replace("warmup_checks = 1", "warmup_checks = 1\npatience = 1000000"))
    argv = search_argv(tmp_path, "--trials", "3", "--steps", "20000", "--space", str(slow))
    db = tmp_path / "db" / "s.db"
    url = f"sqlite:///{db}"

    # 1. kill -9 while the seed recipe (trial 2) fine-tunes.
    log1 = (tmp_path / "run1.log").open("w")
    p1 = subprocess.Popen([*cmd, *argv, "--no-export"], stdout=log1, stderr=subprocess.STDOUT, env=env)
    _wait_for(db, p1, lambda s: s.get(2) == "RUNNING", "trial 2 to start")
    time.sleep(1.0)
    p1.send_signal(signal.SIGKILL)
    p1.wait(timeout=60)
    before = {t.number: t.values for t in optuna.load_study(study_name="micro", storage=url).trials
              if t.state == TrialState.COMPLETE}
    assert sorted(before) == [0, 1]
    assert [p.name.split("-")[2:4] for p in scratch.glob("ac-trial-*")] == [[str(p1.pid), "2"]]  # kill -9 left it

    # 2. The same command resumes: trial 2 is failed as stale and retried as trial 3; Ctrl-C it.
    log2 = (tmp_path / "run2.log").open("w")
    p2 = subprocess.Popen([*cmd, *argv, "--export-format", "checkpoint"], stdout=log2, stderr=subprocess.STDOUT,
                          env=env)
    _wait_for(db, p2, lambda s: s.get(3) == "RUNNING", "the retry of trial 2 to start")
    time.sleep(1.0)
    p2.send_signal(signal.SIGINT)
    assert p2.wait(timeout=WAIT_S) == 130, (tmp_path / "run2.log").read_text()[-2000:]

    study = optuna.load_study(study_name="micro", storage=url)
    by_number = {t.number: t for t in study.trials}
    for n, values in before.items():  # nothing finished was lost or redone
        assert by_number[n].state == TrialState.COMPLETE and by_number[n].values == values
    assert by_number[2].state == TrialState.FAIL
    assert by_number[3].system_attrs["failed_trial"] == 2 and by_number[3].user_attrs["baseline"] == "seed_recipe"
    assert by_number[3].user_attrs["seed"] == by_number[2].user_attrs["seed"]  # the retry is the same experiment
    assert by_number[3].state == TrialState.FAIL and "interrupted" in by_number[3].user_attrs["failure_reason"]
    assert _trial_states(db)[2] == "FAIL"
    assert list(scratch.glob("ac-trial-*")) == []  # the resumed run removed the dead worker's scratch, Ctrl-C its own
    # The export still happened for what was done.
    assert (tmp_path / "exports" / "pareto.json").is_file()
    assert {p.name for p in (tmp_path / "exports").iterdir() if p.is_dir()} <= {"trial-0000", "trial-0001"}

    # 3. Resume once more (short fine-tune): the interrupted trial is retried and the study completes.
    done = subprocess.run([*cmd, *search_argv(tmp_path, "--trials", "3", "--steps", "2", "--no-export", "--space", str(slow))],
                          capture_output=True, text=True, env=env, timeout=WAIT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    study = optuna.load_study(study_name="micro", storage=url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and {0, 1} <= {t.number for t in complete}
    retried = [t for t in complete if t.system_attrs.get("failed_trial") is not None]
    assert retried and all(t.user_attrs["failure_reason"] is None for t in retried)  # the retry did not fail
    assert all("interrupted" in t.user_attrs["retried_after"] or "stale" in t.user_attrs["retried_after"]
               for t in retried)


def test_scratch_of_dead_workers_is_removed_and_nothing_else(tmp_path):
    from autocompress.search.daemon import remove_dead_scratch

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead, live = tmp_path / f"ac-trial-{gone.pid}-7-abc", tmp_path / f"ac-trial-{os.getpid()}-7-abc"
    other = [tmp_path / "ac-trial-2-00pwsffd", tmp_path / "ac-trial-x-7-abc", tmp_path / "keep"]
    for p in (dead, live, *other):
        p.mkdir()
    (dead / "sample.wav").write_bytes(b"RIFF")
    assert remove_dead_scratch(tmp_path) == [dead]
    assert sorted(tmp_path.iterdir()) == sorted([live, *other])


def test_a_measured_study_resumes_only_where_it_measures_alike(search_argv, micro_voice, tmp_path, capsys,
                                                              monkeypatch):
    """Latency measured with 1 thread and then with 2 would sit in one study as if comparable."""
    import torch

    from autocompress.search.pipeline import choose_threads

    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 50.0, 50.0))  # a busy machine
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads() == 1 and choose_threads(stable=True) == len(os.sched_getaffinity(0))

    argv = search_argv(tmp_path, "--trials", "1", "--steps", "0", "--no-export")
    argv = [("cpu" if a == "rtx3060" else a) for a in argv]
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert main(["search", *argv]) == 0
        ident = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").user_attrs["autocompress"]
        assert ident["measured_on"].endswith(", 1 thread")
        torch.set_num_threads(2)  # OMP_NUM_THREADS=2 in a later shell
        capsys.readouterr()
        assert main(["search", *[("2" if a == "1" else a) for a in argv]]) == 1  # one more trial, 2 threads
        assert "measures latency on" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_resuming_for_another_target_or_space_is_refused(search_argv, micro_voice, tmp_path, capsys):
    from autocompress.search.space import load_space

    url = f"sqlite:///{tmp_path}/db/s.db"
    (tmp_path / "db").mkdir()
    space = load_space(micro_voice["space"])
    ident = identity("rtx3060", space.name, space.sha256, {})
    open_study(open_storage(url), "micro", ident, optuna.samplers.RandomSampler(), "note", baselines=())

    argv = search_argv(tmp_path, "--trials", "1", "--no-export")
    other_target = ["--target" if a == "--target" else ("t4" if a == "rtx3060" else a) for a in argv]
    assert main(["search", *other_target]) == 1
    err = capsys.readouterr().err
    assert "study 'micro' was created for target 'rtx3060', not 't4'" in err and err.count("\n") == 1

    changed = tmp_path / "space.toml"
    changed.write_text(micro_voice["space"].read_text().replace("bits = [8, 4]", "bits = [8]"))
    other_space = [str(changed) if a == str(micro_voice["space"]) else a for a in argv]
    assert main(["search", *other_space]) == 1
    err = capsys.readouterr().err
    assert "was created for space 'test-micro', not 'test-micro (different content)'" in err
    assert optuna.load_study(study_name="micro", storage=url).trials == []  # nothing ran


def test_resuming_with_other_figures_for_the_same_target_name_is_refused(search_argv, tmp_path, capsys):
    import autocompress.targets

    (tmp_path / "db").mkdir()
    assert main(["search", *search_argv(tmp_path, "--trials", "1", "--no-export", "--steps", "0")]) == 0
    capsys.readouterr()
    url = f"sqlite:///{tmp_path}/db/s.db"
    before = [t.state for t in optuna.load_study(study_name="micro", storage=url).trials]
    mine = tmp_path / "rtx3060.toml"  # the same name, a tenth of the bandwidth
    text = (Path(autocompress.targets.__file__).parent / "rtx3060.toml").read_text()
    mine.write_text(text.replace("bandwidth_gbps = 360.0", "bandwidth_gbps = 36.0"))
    argv = ["--target" if a == "--target" else (str(mine) if a == "rtx3060" else a)
            for a in search_argv(tmp_path, "--trials", "2", "--no-export", "--steps", "0")]
    assert main(["search", *argv]) == 1
    err = capsys.readouterr().err
    assert "was created for target 'rtx3060' with other figures" in err and err.count("\n") == 1
    assert [t.state for t in optuna.load_study(study_name="micro", storage=url).trials] == before  # nothing ran
    mine.write_text(text.replace("NVIDIA GeForce RTX 3060 12 GB (Ampere GA106)", "my card"))  # words only
    assert main(["search", *argv]) == 0


@pytest.mark.parametrize("older", [None, 1])
def test_resuming_a_study_scored_by_another_version_is_refused(search_argv, micro_voice, tmp_path, capsys, older):
    from autocompress.search.space import load_space

    url = f"sqlite:///{tmp_path}/db/s.db"
    (tmp_path / "db").mkdir()
    space = load_space(micro_voice["space"])
    ident = identity("rtx3060", space.name, space.sha256, {})
    if older is None:
        del ident["scoring"]  # a study made before the version was recorded
    else:
        ident["scoring"] = older
    open_study(open_storage(url), "micro", ident, optuna.samplers.RandomSampler(), "note", baselines=())

    assert main(["search", *search_argv(tmp_path, "--trials", "1", "--no-export")]) == 1
    err = capsys.readouterr().err
    assert f"was scored by an autocompress of scoring version 1, this one scores with version {SCORING_VERSION}" in err
    assert err.count("\n") == 1
    assert optuna.load_study(study_name="micro", storage=url).trials == []  # nothing ran


def test_workers_starting_on_a_new_database_create_optuna_tables_one_at_a_time(search_argv, tmp_path, monkeypatch):
    """Two workers opening a new SQLite file together raced to create Optuna's tables
    ("table studies already exists"); the storage is now opened under the database's lock."""
    import fcntl

    import autocompress.search.daemon as daemon_mod

    held = []
    real = daemon_mod.open_storage

    def probing(url: str):  # noqa: ANN202
        with open(tmp_path / "db" / "s.db.lock", "a") as fh:  # another open file: flock conflicts if held
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fh, fcntl.LOCK_UN)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        return real(url)

    monkeypatch.setattr(daemon_mod, "open_storage", probing)
    (tmp_path / "db").mkdir()
    assert main(["search", *search_argv(tmp_path, "--trials", "1", "--no-export", "--steps", "0")]) == 0
    assert held == [True]


def test_a_plan_the_sampler_asks_for_again_reuses_its_result(search_argv, micro_voice, tmp_path):
    """Two choices and four searched trials: some plans repeat, and a repeat takes the earlier
    trial's result instead of compressing and fine-tuning the same plan again."""
    space = tmp_path / "two.toml"
    space.write_text("[space]\nname = 'two'\nsteps = 1\ntrials = 7\n\n[groups.gpt]\nbits = [8, 4]\n")
    argv = [str(space) if a == str(micro_voice["space"]) else a
            for a in search_argv(tmp_path, "--trials", "7", "--no-export")]
    (tmp_path / "db").mkdir()
    assert main(["search", *argv]) == 0
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db")
    trials = {t.number: t for t in study.trials}
    assert all(t.state == TrialState.COMPLETE for t in trials.values()) and len(trials) == 7
    repeats = [t for t in trials.values() if "repeats" in t.user_attrs]
    assert len(repeats) >= 2  # seven trials, at most five distinct plans (three baselines, two searched)
    for t in repeats:
        twin = trials[t.user_attrs["repeats"]]
        assert twin.number < t.number and "repeats" not in twin.user_attrs
        assert t.user_attrs["plan"]["data"]["groups"] == twin.user_attrs["plan"]["data"]["groups"]
        assert t.values == twin.values and t.user_attrs["metrics"] == twin.user_attrs["metrics"]
        assert t.user_attrs["finetune_steps"] == 0 and t.system_attrs == {**t.system_attrs, **{
            k: v for k, v in twin.system_attrs.items() if k.startswith("constraints:")}}
    from autocompress.store import Store

    rows = {r.trial_number: r for r in Store(f"sqlite:///{tmp_path}/db/s.db").trials("micro")}
    for t in repeats:
        assert rows[t.number].state == "COMPLETE" and len(rows[t.number].metrics) == len(rows[t.user_attrs["repeats"]].metrics)

    # resumed with other fine-tune steps: a result of 1 step does not stand for a plan trained 2
    resumed = [a if a != "7" else "9" for a in argv] + ["--steps", "2"]
    assert main(["search", *resumed]) == 0
    new = [t for t in optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").trials
           if t.number >= 7]
    assert len(new) == 2 and all(t.user_attrs["steps"] == 2 for t in new)
    assert all(trials.get(t.user_attrs.get("repeats"), t).user_attrs.get("steps", 2) == 2 for t in new)
    assert "repeats" not in new[0].user_attrs  # its plan ran before, but with 1 step


def test_resuming_on_other_data_is_refused(search_argv, micro_voice, tmp_path, capsys):
    import shutil

    data = tmp_path / "exp"
    shutil.copytree(micro_voice["data"], data)
    argv = [str(data) if a == str(micro_voice["data"]) else a
            for a in search_argv(tmp_path, "--trials", "1", "--no-export", "--steps", "0")]
    (tmp_path / "db").mkdir()
    assert main(["search", *argv]) == 0
    out = capsys.readouterr().out
    assert "no export" in out and "export ->" not in out  # the header says what --no-export does
    lines = (data / "2-name2text.txt").read_text().splitlines(keepends=True)
    (data / "2-name2text.txt").write_text("".join(lines[:-1]))  # one item fewer
    assert main(["search", *[a if a != "1" else "2" for a in argv]]) == 1
    err = capsys.readouterr().err
    assert "was created for other data" in err and err.count("\n") == 1


def test_a_baseline_that_falls_back_to_another_reuses_its_result(search_argv, tmp_path):
    """On a CPU target teacher_fp16 falls back to fp32: the same model as teacher_fp32."""
    argv = ["cpu" if a == "rtx3060" else a for a in search_argv(tmp_path, "--trials", "2", "--no-export", "--steps", "0")]
    (tmp_path / "db").mkdir()
    assert main(["search", *argv]) == 0
    first, second = [t for t in optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").trials
                     if t.state == TrialState.COMPLETE]
    assert second.user_attrs["baseline"] == "teacher_fp16" and second.user_attrs["repeats"] == first.number
    assert second.values == first.values


def test_a_trial_timed_on_a_shared_machine_is_noted_and_warned(search_argv, tmp_path, monkeypatch, caplog):
    """Two searches on the measured cpu target slow each other: the trial says so instead of hiding it."""
    from autocompress.score import timing, voice_cost

    cpus = len(os.sched_getaffinity(0))

    def shared(fn, warmup=1, repeats=3, sync=None, setup=None):  # noqa: ANN001
        for _ in range(warmup + repeats):
            if setup is not None:
                setup()
            fn()
        return timing.Timing(samples_s=(0.01,) * repeats, warmup=warmup, others_cores=float(cpus), own_cores=0.1)

    monkeypatch.setattr(voice_cost, "measure", shared)
    argv = ["cpu" if a == "rtx3060" else a for a in search_argv(tmp_path, "--trials", "1", "--no-export", "--steps", "0")]
    (tmp_path / "db").mkdir(exist_ok=True)
    with caplog.at_level("WARNING"):
        assert main(["search", *argv]) == 0
    trial = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").trials[0]
    assert trial.state == TrialState.COMPLETE
    expected = f"contended: other processes kept {cpus:.1f} of {cpus} CPUs"
    assert any(expected in note for note in trial.user_attrs["notes"]), trial.user_attrs["notes"]
    assert "timed on a shared machine" in caplog.text


def test_an_infeasible_trial_says_which_constraint_it_breaks(search_argv, tmp_path, capsys):
    """A trial line said only "infeasible"; it names the budget or the release floor it missed."""
    import autocompress.targets

    tight = tmp_path / "tight.toml"  # a card that leaves the voice almost no memory
    text = (Path(autocompress.targets.__file__).parent / "rtx3060.toml").read_text()
    tight.write_text(text.replace('name = "rtx3060"', 'name = "tight"').replace("vram_gb = 2.0", "vram_gb = 0.01"))
    argv = [str(tight) if a == "rtx3060" else a for a in search_argv(tmp_path, "--trials", "1", "--steps", "0", "--no-export")]
    (tmp_path / "db").mkdir(exist_ok=True)
    assert main(["search", *argv]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "trial 0: quality" in x)
    assert "infeasible: memory budget exceeded by" in line, line
    trial = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").trials[0]
    assert trial.user_attrs["infeasible_because"].startswith("memory budget exceeded by")


def test_an_unreachable_server_and_a_missing_driver_are_told_apart():
    """A refused connection was answered with 'pip install autocompress[postgres]' whenever the
    URL named psycopg, though the driver was there and the server was not."""
    import sys

    from autocompress.exceptions import StoreError

    url = "postgresql+psycopg://nobody@127.0.0.1:1/x"  # port 1: nothing listens
    with pytest.raises(StoreError, match="Connection refused") as refused:
        open_storage(url)
    assert "pip install" not in str(refused.value) and "\n" not in str(refused.value)
    code = (  # a fresh process: a driver this one imported stays cached in SQLAlchemy's dialect
        "import sys; sys.modules['psycopg'] = None\n"
        "from autocompress.search.study import open_storage\n"
        f"open_storage({url!r})"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "StoreError" in proc.stderr and "hint: pip install 'autocompress[postgres]'" in proc.stderr


def test_a_study_deleted_and_searched_again_starts_with_empty_tables(search_argv, micro_voice, tmp_path, capsys):
    """After the study was deleted (as the dashboard does) and searched again under its name, our
    tables still held the deleted study's trials: its tables listed them and its Pareto set could be one."""
    from autocompress.store import Store

    space = tmp_path / "one.toml"
    space.write_text("[space]\nname = 'one'\nsteps = 1\ntrials = 3\n\n[groups.gpt]\nbits = [8]\n")
    argv = [str(space) if a == str(micro_voice["space"]) else a for a in search_argv(tmp_path, "--no-export")]
    url = f"sqlite:///{tmp_path}/db/s.db"
    (tmp_path / "db").mkdir()
    assert main(["search", *argv, "--trials", "3"]) == 0
    assert len(Store(url).trials("micro")) == 3
    optuna.delete_study(study_name="micro", storage=url)
    assert main(["search", *argv, "--trials", "1"]) == 0
    rows = Store(url).trials("micro")
    assert [r.trial_number for r in rows] == [0] and rows[0].state == "COMPLETE"
    done = optuna.load_study(study_name="micro", storage=url).get_trials(states=(TrialState.COMPLETE,))
    assert [t.number for t in done] == [0]


def test_a_trial_with_nothing_to_train_gets_no_empty_best_check_list(search_argv, tmp_path):
    """The teacher baseline trains nothing: its note ended "each group scored at its best check ()"."""
    (tmp_path / "db").mkdir(exist_ok=True)
    assert main(["search", *search_argv(tmp_path, "--trials", "1", "--no-export", "--steps", "0")]) == 0
    trial = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path}/db/s.db").trials[0]
    stopped = [n for n in trial.user_attrs["notes"] if n.startswith("fine-tuning stopped")]
    assert stopped and "()" not in stopped[0] and "best check" not in stopped[0], stopped
