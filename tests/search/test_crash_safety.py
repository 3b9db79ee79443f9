"""Stopping a search at any moment (Ctrl-C, SIGTERM, kill -9) and running it again: the work
stopped is done again, however often that happens, and the finished work stays."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autocompress.cli.main import main
from autocompress.interrupts import Terminated, deferred_interrupts, sigterm_interrupts

from autocompress.search.study import (
    GIVEN_UP_REASON,
    MAX_RETRY,
    STALE_REASON,
    ask,
    count_done,
    identity,
    open_storage,
    open_study,
    recover_stale_trials,
    requeue,
)
from autocompress.store import Store


def _study(tmp_path: Path) -> tuple[optuna.Study, Store]:
    url = f"sqlite:///{tmp_path}/s.db"
    store = Store(url)
    study, _ = open_study(open_storage(url), "micro", identity("rtx3060", "s", "ab", {}),
                          optuna.samplers.RandomSampler(seed=0), "note", baselines=("seed_recipe",))
    return study, store


def _start(study: optuna.Study, store: Store) -> tuple[optuna.Trial, int]:
    """Ask the next trial in a new run of the search, as the daemon does; return it and the run id."""
    run_id = store.start_run(study_name="micro", target="rtx3060", space_name="s", space_sha256="ab",
                             voice="demo", settings={}, device_info={})
    trial = ask(study)
    study._storage.record_heartbeat(trial._trial_id)
    store.begin_trial(run_id=run_id, study_name="micro", trial_number=trial.number,
                      optuna_trial_id=trial._trial_id, device_info={}, baseline=trial.user_attrs.get("baseline"))
    return trial, run_id


def _interrupt(study: optuna.Study, store: Store, trial: optuna.Trial, run_id: int) -> None:
    """What the daemon does when Ctrl-C stops ``trial``."""
    trial.set_user_attr("failure_reason", "interrupted")
    study.tell(trial, state=TrialState.FAIL)
    store.finish_trial(study_name="micro", trial_number=trial.number, state="FAIL", failure_reason="interrupted")
    requeue(study, trial.number)
    store.finish_run(run_id, "interrupted")


def _kill(study: optuna.Study, store: Store, trial: optuna.Trial, run_id: int) -> list[int]:
    """The process running ``trial`` dies; the next run recovers it. Returns the trials recovered."""
    store.finish_run(run_id, "killed")
    later = store.start_run(study_name="micro", target="rtx3060", space_name="s", space_sha256="ab",
                            voice="demo", settings={}, device_info={})
    failed = recover_stale_trials(study, store, later)
    store.finish_run(later, "finished")
    return failed


def test_a_trial_interrupted_again_and_again_is_always_run_again(tmp_path):
    """A trial the user stopped a third time (Ctrl-C or SIGTERM) was not re-enqueued: Optuna's cap
    on the retries of dead workers applied, the trial counted as a finished FAIL, its plan (here the
    seed-recipe baseline) was never run, and its reason still said "re-enqueued for the next run"."""
    study, store = _study(tmp_path)
    for _ in range(MAX_RETRY + 3):
        trial, run_id = _start(study, store)
        assert trial.user_attrs["baseline"] == "seed_recipe"  # the same plan each time
        _interrupt(study, store, trial, run_id)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        assert [t.user_attrs["baseline"] for t in waiting] == ["seed_recipe"]
        assert count_done(study) == 0  # nothing finished yet: the interrupted tries do not count


def test_interruptions_do_not_use_up_the_retries_of_a_dying_worker(tmp_path):
    study, store = _study(tmp_path)
    for _ in range(MAX_RETRY + 1):
        _interrupt(study, store, *_start(study, store))
    # Then the worker dies on it, as often as Optuna retries a trial of a dead worker and once more.
    for death in range(MAX_RETRY + 1):
        trial, run_id = _start(study, store)
        assert _kill(study, store, trial, run_id) == [trial.number]
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        reason = store.trial("micro", trial.number).failure_reason
        if death < MAX_RETRY:
            assert len(waiting) == 1 and reason == STALE_REASON
        else:  # given up, and said so: the row no longer claims that it was re-enqueued
            assert waiting == [] and reason == GIVEN_UP_REASON
            assert count_done(study) == 1


# ---------------------------------------------------------------- what a stopped search says, its exit status


def _stopped_search(monkeypatch, how):  # noqa: ANN001
    """Make ``autocompress search`` run ``how(reporter)`` in place of the daemon."""
    import autocompress.search as search_pkg

    monkeypatch.setattr(search_pkg, "run_search", lambda resolved, reporter: how(reporter))


@pytest.mark.parametrize(("interrupt", "code", "by"), [(KeyboardInterrupt(), 130, "Ctrl-C"),
                                                       (Terminated("signal 15"), 143, "SIGTERM")])
def test_a_search_stopped_during_its_export_says_what_is_left_and_what_to_run(
    search_argv, tmp_path, monkeypatch, capsys, interrupt, code, by
):
    """It printed "interrupted" alone: not that the export was cut short, nor that the trials were
    saved and the same command exports them; and SIGTERM exited 130, Ctrl-C's status."""

    def stopped(reporter):  # noqa: ANN001, ANN202
        reporter.phase(-1, "export")
        raise interrupt

    _stopped_search(monkeypatch, stopped)
    assert main(["search", *search_argv(tmp_path)]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"by {by} during the export" in err and str(tmp_path / "exports") in err
    assert "run the same command again" in err


def test_a_search_stopped_while_it_starts_says_to_run_it_again(search_argv, tmp_path, monkeypatch, capsys):
    def stopped(reporter):  # noqa: ANN001, ANN202
        raise Terminated("signal 15")

    _stopped_search(monkeypatch, stopped)
    assert main(["search", *search_argv(tmp_path)]) == 143
    err = capsys.readouterr().err
    assert "export" not in err and "run the same command again to resume" in err


@pytest.mark.parametrize(("by", "code"), [("Ctrl-C", 130), ("SIGTERM", 143)])
def test_a_search_stopped_between_or_in_trials_says_how_to_resume(search_argv, tmp_path, monkeypatch, capsys,
                                                                   by, code):
    """Its last line was "search interrupted in 41s": nothing said that the finished trials were
    kept, nor what to run to go on."""
    from autocompress.search.progress import SearchSummary

    def stopped(reporter):  # noqa: ANN001, ANN202
        summary = SearchSummary(study="micro", target="rtx3060", status="interrupted", rows=(), elapsed_s=41.0,
                                interrupted_by=by)
        reporter.search_finished(summary)
        return summary

    _stopped_search(monkeypatch, stopped)
    assert main(["search", *search_argv(tmp_path)]) == code
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"interrupted by {by}" in last and "run the same command again to resume" in last


# ---------------------------------------------------------------- Ctrl-C twice


def test_a_second_interrupt_waits_for_the_block_and_a_third_does_not():
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        signal.raise_signal(signal.SIGINT)
        done = True  # the block goes on after the first
    assert done
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        pytest.fail("the second Ctrl-C did not stop the block")
    with pytest.raises(Terminated), sigterm_interrupts(), deferred_interrupts():
        signal.raise_signal(signal.SIGTERM)
    previous = signal.getsignal(signal.SIGINT)
    with deferred_interrupts():
        pass
    assert signal.getsignal(signal.SIGINT) is previous  # restored


def test_ctrl_c_twice_in_a_row_still_re_enqueues_the_trial_and_skips_the_export(
    search_argv, tmp_path, monkeypatch, capsys
):
    """The second Ctrl-C came while the first was being recorded, between Optuna's FAIL and the
    re-enqueue: the trial was lost (never run again, and counted among the finished trials) and
    our row of it stayed RUNNING."""
    from autocompress.search.pipeline import VoiceTrialRunner

    real_run, real_tell = VoiceTrialRunner.run, optuna.Study.tell

    def run(self, job, hooks):  # noqa: ANN001, ANN202
        if job.baseline == "teacher_fp16":
            raise KeyboardInterrupt  # the first Ctrl-C
        return real_run(self, job, hooks)

    def tell(self, trial, values=None, state=None, **kw):  # noqa: ANN001, ANN202
        frozen = real_tell(self, trial, values, state, **kw)
        if state == TrialState.FAIL:
            signal.raise_signal(signal.SIGINT)  # the second, just after the first trial's FAIL is written
        return frozen

    monkeypatch.setattr(VoiceTrialRunner, "run", run)
    monkeypatch.setattr(optuna.Study, "tell", tell)
    assert main(["search", *search_argv(tmp_path, "--trials", "3", "--steps", "0")]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    url = f"sqlite:///{tmp_path}/db/s.db"
    trials = {t.number: t for t in optuna.load_study(study_name="micro", storage=url).trials}
    assert trials[1].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == 1]
    assert [t.state for t in retries] == [TrialState.WAITING]  # it runs again next time
    assert Store(url).trial("micro", 1).state == "FAIL"
    assert [r.status for r in Store(url).runs("micro")] == ["interrupted"]
    assert not (tmp_path / "exports").exists()  # the second Ctrl-C also skips the export


# ---------------------------------------------------------------- a full disk, a read-only folder


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_a_full_disk_stops_the_search_and_re_enqueues_the_trial(search_argv, tmp_path, monkeypatch, capsys, error):
    """Each later trial ran its whole fine-tune and scoring, then failed to save its student; all
    were recorded FAIL and counted among the finished trials (never run again once the disk had
    room), and the search said "finished" with exit status 0."""
    import autocompress.search.pipeline as pipeline

    def full(student, plan, dest, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise OSError(error, os.strerror(error), str(dest))

    monkeypatch.setattr(pipeline, "_save_student", full)
    assert main(["search", *search_argv(tmp_path, "--trials", "4", "--steps", "0")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and os.strerror(error) in err and "run the same command again" in err
    url = f"sqlite:///{tmp_path}/db/s.db"
    trials = optuna.load_study(study_name="micro", storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING, TrialState.WAITING]
    assert trials[3].system_attrs["failed_trial"] == 0  # the stopped trial runs again next time
    assert [r.status for r in Store(url).runs("micro")] == ["failed"]


@pytest.mark.parametrize(("interrupt", "code"), [(KeyboardInterrupt(), 130), (Terminated("signal 15"), 143)])
def test_sigterm_ends_the_search_without_its_export_and_ctrl_c_exports(
    search_argv, tmp_path, monkeypatch, capsys, interrupt, code
):
    """A SIGTERM'd search (a service stop, a scheduler's time limit, which gives 30 s before
    SIGKILL) went on to export, minutes for a full-size voice; Ctrl-C still exports what is done."""
    from autocompress.search.pipeline import VoiceTrialRunner

    real_run = VoiceTrialRunner.run

    def run(self, job, hooks):  # noqa: ANN001, ANN202
        if job.baseline == "teacher_fp16":
            raise interrupt
        return real_run(self, job, hooks)

    monkeypatch.setattr(VoiceTrialRunner, "run", run)
    assert main(["search", *search_argv(tmp_path, "--trials", "3", "--steps", "0")]) == code
    out = capsys.readouterr().out
    exports = tmp_path / "exports"
    if isinstance(interrupt, Terminated):
        assert not exports.exists() and "export skipped: SIGTERM" in out
    else:
        assert any(exports.rglob("manifest.json")) and "export skipped" not in out


def test_a_full_disk_during_the_final_export_is_one_line_and_keeps_the_trials(search_argv, tmp_path, monkeypatch, capsys):
    """An OSError from the export (full disk, an --out onnxruntime or the file system refuses)
    escaped the search's export step: no trial table, and a temporary folder's path as the error."""
    import autocompress.search.daemon as daemon_mod

    def full(**kwargs):  # noqa: ANN003, ANN202
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / ".exports.tmp-1"))

    monkeypatch.setattr(daemon_mod, "export_pareto", full)
    code = main(["search", *search_argv(tmp_path, "--trials", "1", "--steps", "0")])
    out, err = capsys.readouterr()
    text = out + err
    assert "Traceback" not in text and "the trials are saved" in text and os.strerror(errno.ENOSPC) in text
    assert "autocompress export --study micro --target rtx3060" in " ".join(text.split())  # rich may wrap it
    url = f"sqlite:///{tmp_path}/db/s.db"
    assert optuna.load_study(study_name="micro", storage=url).trials[0].state == TrialState.COMPLETE
    assert code == 1
