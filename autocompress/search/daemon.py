"""The search daemon: the ask/tell loop that owns the study, the store and the artifacts.

One call to :func:`run_search` opens (or resumes) the study, recovers trials a dead process
left RUNNING, then asks Optuna for trials until the study holds ``n_trials`` finished ones or
the timeout passes. Each trial goes plan -> :class:`~autocompress.search.trial.TrialRunner`
(compress, fine-tune, score) -> constraints and objectives told to Optuna -> labelled metrics in
the store -> plan and audio samples in the artifact store. A trial that raises is recorded
FAIL with its reason and the search goes on; Ctrl-C marks the running trial, stops asking, and
still exports what is done (SIGTERM does the same without the export). The feasible Pareto set is exported at the end.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import FrozenTrial, TrialState

from autocompress.compress.deploy import with_deployable_precisions
from autocompress.compress.plan import CompressionPlan
from autocompress.exceptions import AutocompressError, SearchError, StoreError
from autocompress.interrupts import Terminated, deferred_interrupts, sigterm_interrupts, signal_name
from autocompress.models.gpt_sovits.data import BERT_DIR, HUBERT_DIR, NAME2TEXT, SEMANTIC, SV_DIR, WAV_DIR
from autocompress.runtime.files import sha256_file
from autocompress.search.abort import AbortRule
from autocompress.search.config import ResolvedSearch
from autocompress.search.pareto import (
    export_command,
    export_pareto,
    feasible_front,
    kept_front,
    mark_pareto,
    nothing_feasible_line,
)
from autocompress.search.paths import student_dir, students_dir, teacher_cache_path
from autocompress.search.plans import baseline_plan, plan_summary
from autocompress.search.progress import NullReporter, Reporter, SearchInfo, SearchSummary, TrialRow
from autocompress.search.study import (
    IDENTITY_ATTR,
    METRIC_NAMES,
    ask,
    check_resumable,
    count_done,
    count_running,
    heartbeat,
    identity,
    is_created,
    mirror_trial,
    open_storage,
    open_study,
    recover_stale_trials,
    requeue,
    run_heartbeat,
)
from autocompress.search.trial import TrialHooks, TrialJob, TrialOutcome, TrialRunner
from autocompress.store import Objectives, Store, TrialRecord, database_reason, display_url, exclusive, pid_alive

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Builds the trial runner of a search (loads the teacher, the data and the teacher cache).
RunnerFactory = Callable[[ResolvedSearch, Path], TrialRunner]
STARTUP_TRIALS = 5  # random trials before TPE models the front (baselines excluded)


def default_runner_factory(
    resolved: ResolvedSearch, cache_path: Path, progress: Callable[[str], None] | None = None
) -> TrialRunner:
    """The GPT-SoVITS trial pipeline; ``progress`` gets a line as each step of its loading starts."""
    from autocompress.search.pipeline import VoiceTrialRunner

    return VoiceTrialRunner.prepare(resolved, cache_path, progress)


def run_search(
    resolved: ResolvedSearch,
    reporter: Reporter | None = None,
    runner_factory: RunnerFactory | None = None,
) -> SearchSummary:
    """Run (or resume) a search to its end; export the feasible Pareto set.

    SIGTERM stops it as Ctrl-C does (the running trial is marked and re-enqueued).

    Raises:
        SearchError: the study belongs to another target or space, or the search cannot start.
        StoreError: the database cannot be opened or written.
    """
    reporter = reporter or NullReporter()
    if runner_factory is None:  # the voice and the teacher cache take minutes to load: say what is going on
        runner_factory = functools.partial(default_runner_factory, progress=lambda line: reporter.phase(-1, line))
    daemon = _Daemon(resolved, reporter, runner_factory)
    with sigterm_interrupts():
        try:
            return daemon.run()
        except (optuna.exceptions.StorageInternalError, sa.exc.SQLAlchemyError) as e:  # Optuna's own writes
            raise StoreError(f"cannot use the database at {display_url(daemon.url)}: {database_reason(e)}") from e


@dataclass
class _Running:
    """What the loop knows about the trial in flight."""

    trial: optuna.Trial
    started: float
    baseline: str | None = None
    told: bool = False
    steps_done: int = 0
    infeasible_because: str = ""  # which constraints a finished trial breaks, for its progress line


# What a trial cannot fix: a full disk or quota, a read-only or forbidden folder.
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
INTERRUPTED_REASON = "interrupted by the user (Ctrl-C or SIGTERM); re-enqueued for the next run"
SCRATCH_PREFIX = "ac-trial-"  # a trial's scratch folder: <tmp>/ac-trial-<pid>-<trial number>-<random>


def remove_dead_scratch(tmp: Path | None = None) -> list[Path]:
    """Remove the trial scratch folders that killed workers on this machine left in ``tmp``
    (the system's temporary folder); return them."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*-*"):
        pid, number = path.name.removeprefix(SCRATCH_PREFIX).split("-")[:2]
        if path.is_dir() and pid.isdigit() and number.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _forget_students(artifacts: Path, study: str) -> None:
    """Remove the student checkpoints left under ``study``'s name by a deleted study of that name
    (a trial repeating an earlier plan would otherwise be exported with the deleted study's student)."""
    root = students_dir(artifacts, study)
    if not root.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    if root.exists():
        raise SearchError(
            f"cannot remove {root}, the student checkpoints of an earlier study named {study!r} (deleted since): "
            "remove that folder, or choose another --study"
        )


def _measuring_device(r: ResolvedSearch) -> str | None:
    """The device and threads that will measure a measured target's latency (None: projected)."""
    if not r.target.measured:
        return None
    import torch

    from autocompress.score.metric import host_device
    from autocompress.search.pipeline import choose_threads

    if r.device == "cpu":
        torch.set_num_threads(choose_threads(stable=True))  # what the runner will use
    return host_device(r.device)


def abort_reference(
    front: list, steps: int | None = None  # front: FrozenTrials
) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """The per-group distance curves of the Pareto trials, for the abort rule.

    Only the groups each trial fine-tuned: a group it merely cast to 16 bits has a near-zero
    distance, no fair bar for one that is pruned or quantized. With ``steps``, only the trials
    that were asked for as many fine-tune steps: the learning-rate schedule spans the steps, so
    a distance at one step of a shorter schedule is no bar for the same step of a longer one.
    """
    from autocompress.search.pipeline import needs_finetune

    reference = {}
    for t in front:
        curves = t.user_attrs.get("finetune_group_curves")
        if steps is not None and t.user_attrs.get("steps") != steps:
            continue
        if t.user_attrs.get("finetune_steps", 0) > 0 and isinstance(curves, dict):
            trained = needs_finetune(CompressionPlan.from_dict(t.user_attrs["plan"]))
            reference[t.number] = {g: [(int(s), float(d)) for s, d in c] for g, c in curves.items() if g in trained}
    return reference


def _first_try(trial: optuna.Trial) -> int:
    """The number of the trial this one retries (a stale or interrupted trial's plan runs again
    as a new trial, with the same seed), or its own."""
    attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
    return int(attrs.get("failed_trial", trial.number))


def _voice_sha256(voice) -> str:  # noqa: ANN001 - VoiceSource
    """The teacher's GPT and SoVITS files, by content: what a study's results belong to."""
    return " ".join(sha256_file(path, memo=True) for path in (voice.gpt, voice.sovits))


DATA_FILES = (NAME2TEXT, SEMANTIC)  # an experiment folder's items: texts and codes


def _data_sha256(voice) -> str:  # noqa: ANN001 - VoiceSource
    """The experiment folder's item lists, by content: the items a study's trials were scored on."""
    return " ".join(sha256_file(Path(voice.data) / f) if (Path(voice.data) / f).is_file() else "-" for f in DATA_FILES)


FEATURE_DIRS = (BERT_DIR, HUBERT_DIR, WAV_DIR, SV_DIR)  # an experiment folder's per-item features and audio
DATA_FILES_ATTR = "data_files"  # identity key: FEATURE_DIRS -> digest of their file listings


def _reads_speaker_vectors(voice) -> bool:  # noqa: ANN001 - VoiceSource
    """Whether the voice's SoVITS reads the experiment folder's speaker vectors (v2Pro, v2ProPlus);
    True when its file cannot be read (loading the voice then says why)."""
    from autocompress.exceptions import CheckpointError
    from autocompress.models.gpt_sovits import inspect_checkpoint

    try:
        info = inspect_checkpoint(voice.sovits)
    except CheckpointError:
        return True
    return info.kind != "sovits" or info.config.is_pro


def _data_files(voice) -> dict[str, str]:  # noqa: ANN001 - VoiceSource
    """Each feature folder of the experiment folder that the voice reads, by the names and byte sizes
    of its files ("-": no such folder): cheap to take at each start, and changed by features extracted
    again or replaced. ``7-sv_cn`` is left out for a voice without speaker vectors (v1, v2)."""
    out = {}
    for folder in FEATURE_DIRS:
        if folder == SV_DIR and not _reads_speaker_vectors(voice):
            continue
        path = Path(voice.data) / folder
        if not path.is_dir():
            out[folder] = "-"
            continue
        with os.scandir(path) as entries:
            listing = sorted(f"{e.name}\t{e.stat().st_size}" for e in entries if e.is_file())
        out[folder] = hashlib.sha256("\n".join(listing).encode("utf-8", "surrogateescape")).hexdigest()
    return out


def _check_data_files(storage, name: str, files: dict[str, str]) -> None:  # noqa: ANN001 - RDBStorage
    """Raise ``SearchError`` when study ``name`` recorded other feature folders than ``files``; a study
    recorded without them (made before they were recorded) is not checked."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return
    existing = storage.get_study_user_attrs(study_id).get(IDENTITY_ATTR)
    recorded = existing.get(DATA_FILES_ATTR) if isinstance(existing, dict) else None
    if not isinstance(recorded, dict):
        return
    changed = [f for f in FEATURE_DIRS if f in recorded and f in files and recorded[f] != files[f]]
    if changed:
        raise SearchError(
            f"study {name!r} was created for other data (the files of its experiment folder's {', '.join(changed)} "
            "changed: added, removed or resized), and its trials were scored on the old ones; resume it with the "
            "data it was created with, or start a new study with --study NAME"
        )


class _Daemon:
    def __init__(self, resolved: ResolvedSearch, reporter: Reporter, runner_factory: RunnerFactory) -> None:
        self.r = resolved
        self.reporter = reporter
        self.runner_factory = runner_factory
        self.url = resolved.config.storage
        self.durations: list[tuple[str | None, float, bool]] = []  # (baseline, seconds, fine-tuned) of finished trials
        self.loop_started = time.monotonic()  # reset when the trials start: the timeout counts from there
        self.interruption: KeyboardInterrupt | None = None  # what stopped the trials, if anything did

    # ------------------------------------------------------------------ top level
    def run(self) -> SearchSummary:
        r = self.r
        t_start = time.monotonic()
        self.store = Store(self.url)
        with exclusive(self.store.engine, "autocompress:optuna-schema"):  # workers starting on a new database
            self.storage = open_storage(self.url)
        ident = identity(r.target.name, r.space.name, r.space.sha256, r.voice.to_dict(), _voice_sha256(r.voice),
                         measured_on=_measuring_device(r), target_sha256=r.target.sha256,
                         data_sha256=_data_sha256(r.voice))
        ident[DATA_FILES_ATTR] = _data_files(r.voice)
        try:
            check_resumable(self.storage, r.study, ident)  # before the voice loads; creates nothing
            _check_data_files(self.storage, r.study, ident[DATA_FILES_ATTR])
            r.artifacts.mkdir(parents=True, exist_ok=True)
            # The voice and data load before the study is made, so a bad voice leaves no study behind.
            self.runner = self.runner_factory(r, teacher_cache_path(r.artifacts, r.study))
        except BaseException:
            self.store.close()
            raise
        note = self._note()
        with exclusive(self.store.engine, f"autocompress:study:{r.study}"):  # workers starting together: one creates
            if not is_created(self.storage, r.study):  # only the worker creating the study: others share its students
                _forget_students(r.artifacts, r.study)
            self.study, created = open_study(
                self.storage, r.study, ident, optuna.samplers.RandomSampler(seed=r.config.seed), note
            )
            if created:  # a study deleted (say in the dashboard) and searched again: its numbers restart at 0
                self.store.forget_trials(r.study)
        n_existing = len(self.study.get_trials(deepcopy=False))
        self.run_id = self.store.start_run(
            study_name=r.study, target=r.target.name, space_name=r.space.name, space_sha256=r.space.sha256,
            voice=r.voice.describe(), settings=self._settings(), device_info={"device": r.device},
        )
        # Workers that open the study at the same trial count must not draw the same plans: a
        # run beside other live runs of the study mixes its own run id into the seed.
        beside = [run for run in self.store.runs(r.study) if run.status == "running" and run.id != self.run_id]
        seed = (r.config.seed + n_existing + (1_000_003 * self.run_id if beside else 0)) % 2**32  # numpy's range
        self.study.sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=True,
            constant_liar=True, n_startup_trials=STARTUP_TRIALS,
        )
        status = "failed"
        exported: tuple[Path, ...] = ()
        export_error = ""
        export_skipped = False
        try:
            with run_heartbeat(self.store, self.run_id):  # other machines can tell when this run dies
                recovered = recover_stale_trials(self.study, self.store, self.run_id)
                remove_dead_scratch()
                self.artifact_store = FileSystemArtifactStore(r.artifacts)
                self.labels = self.runner.labels()
                self._set_study_labels()
                self.reporter.search_started(self._info(recovered))
                interrupted = self._loop(time.monotonic())  # the timeout counts from the first trial
                status = "interrupted" if interrupted else "finished"
                # SIGTERM (a service stop, a scheduler's time limit) asks for a quick exit: a
                # full-size export takes minutes, and a scheduled run exports after its search.
                stopping = isinstance(self.interruption, Terminated)
                if r.config.export and not stopping:
                    exported, export_error = self._export()
                export_skipped = r.config.export and stopping
        except KeyboardInterrupt:  # before the first trial or during the export: nothing to mark
            status = "interrupted"
            raise
        finally:
            self.store.finish_run(self.run_id, status)
        self._say_if_nothing_feasible()
        summary = SearchSummary(
            study=r.study, target=r.target.name, status=status, rows=self._rows(), exported=exported,
            export_error=export_error, elapsed_s=time.monotonic() - t_start,
            interrupted_by=signal_name(self.interruption) if status == "interrupted" else "",
            export_skipped=export_skipped,
        )
        self.reporter.search_finished(summary)
        self.store.close()
        return summary

    def _loop(self, t_start: float) -> bool:
        """Run trials until done, ``timeout_s`` after ``t_start`` or interrupted; True when interrupted."""
        timeout = self.r.config.timeout_s
        self.loop_started = t_start
        try:
            while count_done(self.study) < self.r.n_trials:
                if timeout is not None and time.monotonic() - t_start >= timeout:
                    break
                recover_stale_trials(self.study, self.store, self.run_id)
                if count_done(self.study) + count_running(self.study) >= self.r.n_trials:
                    break  # other workers' trials in flight complete the count
                self._one_trial()
        except KeyboardInterrupt as e:
            if getattr(e, "repeated", False):
                raise
            self.interruption = e
            return True
        return False

    # ------------------------------------------------------------------ one trial
    def _one_trial(self) -> None:
        trial = ask(self.study)
        run = _Running(trial=trial, started=time.monotonic(), baseline=trial.user_attrs.get("baseline"))
        try:
            with heartbeat(self.storage, trial._trial_id):  # from the start: a trial without one is never found stale
                self._trial_body(run)
        except KeyboardInterrupt:
            try:
                with deferred_interrupts():  # a second Ctrl-C must not leave the trial failed but not re-enqueued
                    if not run.told and self._finish_failed(run, "FAIL", INTERRUPTED_REASON):  # a told trial stays
                        requeue(self.study, run.trial.number)
            except KeyboardInterrupt as again:  # pressed again meanwhile: stop now, without the export
                again.repeated = True
                raise
            raise
        except optuna.TrialPruned as e:
            self._finish_failed(run, "PRUNED", str(e) or "pruned")
        except Exception as e:  # noqa: BLE001 - any failure of one trial must not stop the search ...
            if isinstance(e, OSError) and e.errno in UNWRITABLE:  # ... but a full disk or a read-only folder
                # fails every trial after its work: stop, and run this one again later
                if not run.told and self._finish_failed(run, "FAIL", f"{_reason(e)}; re-enqueued for the next run"):
                    requeue(self.study, run.trial.number)
                where = f"{e.filename}: " if e.filename else ""
                raise SearchError(
                    f"cannot write {where}{e.strerror or e}; trial {run.trial.number} is re-enqueued: free some space "
                    "or make the folder writable, then run the same command again"
                ) from e
            self._finish_failed(run, "FAIL", _reason(e))
        finally:
            self._drop_dominated_students()

    def _trial_body(self, run: _Running) -> None:
        r, trial = self.r, run.trial
        number = trial.number
        plan = self._plan_of(run)
        summary = plan_summary(plan) if run.baseline is None else f"{run.baseline}: {plan_summary(plan)}"
        trial.set_user_attr("plan_summary", summary)
        trial.set_user_attr("plan", plan.to_dict())
        seed = r.config.seed + _first_try(trial)  # a retried trial is the same experiment
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("steps", r.steps)  # fine-tune steps asked for (a repeat reuses a result of as many)
        self.store.begin_trial(
            run_id=self.run_id, study_name=r.study, trial_number=number, optuna_trial_id=trial._trial_id,
            device_info=self.runner.describe(), baseline=run.baseline, plan=plan.to_dict(), plan_summary=summary,
        )
        self.reporter.trial_started(number, summary, self._eta())
        twin = self._same_plan(trial.number, plan)  # a baseline too: teacher_fp16 falls back to fp32 on a CPU
        if twin is not None:
            self._reuse(run, twin)
            return
        scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{number}-"))
        try:
            job = TrialJob(
                number=number, plan=plan, baseline=run.baseline, steps=r.steps, abort=self._abort_rule(),
                seed=seed, student_dir=student_dir(r.artifacts, r.study, number),
                samples_dir=scratch,
            )

            def on_step(step: int, total: int, loss: float, distance: float | None) -> None:
                run.steps_done = step
                self.reporter.step(number, step, total, loss, distance)

            hooks = TrialHooks(phase=lambda name: self.reporter.phase(number, name), step=on_step)
            outcome = self.runner.run(job, hooks)
            self._finish_complete(run, plan, outcome, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _plan_of(self, run: _Running) -> CompressionPlan:
        """The trial's plan, with every precision the target cannot ship replaced by its fallback."""
        if run.baseline is not None:
            plan = baseline_plan(run.baseline)
        else:
            params = self.r.space.suggest(run.trial)
            plan = self.r.space.plan(params, name=f"trial-{run.trial.number}")
        return with_deployable_precisions(plan, self.r.target)

    def _finish_complete(self, run: _Running, plan: CompressionPlan, outcome: TrialOutcome, scratch: Path) -> None:
        trial, r = run.trial, self.r
        values = outcome.objectives.as_tuple()
        bad = [n for n, v in zip(METRIC_NAMES, values) if not math.isfinite(v)]
        if bad:
            why = "; ".join(m.note for m in outcome.metrics if m.name in bad and m.note)
            raise SearchError(f"objective {', '.join(bad)} is not finite ({values})" + (f": {why}" if why else ""))
        metrics = [_metric_dict(m) for m in outcome.metrics]
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("device", outcome.device_info or self.runner.describe())
        trial.set_user_attr("finetune_steps", outcome.steps_done)
        trial.set_user_attr("finetune_curve", [list(p) for p in outcome.curve])  # progress, 1.0 at step 0
        trial.set_user_attr("finetune_group_curves", {g: [list(p) for p in c] for g, c in outcome.group_curves.items()})
        trial.set_user_attr("notes", list(outcome.notes))
        if trial.user_attrs.get("failure_reason"):  # copied from the try it retries: that try failed, not this
            trial.set_user_attr("retried_after", trial.user_attrs["failure_reason"])
            trial.set_user_attr("failure_reason", None)
        # Optuna 5's per-trial constraints (stored as system attributes "constraints:<key>"): the TPE
        # sampler scores a trial's infeasibility as the sum of its positive values and models
        # infeasible trials as "bad"; NSGA-II uses constrained domination; best_trials and our
        # Pareto export keep only trials whose values are all <= 0.
        for key, value in outcome.constraints.items():
            trial.set_constraint(key, value)
        # optuna-dashboard reads neither form of constraints: its trial table shows this instead
        # (its "best trials" view still ignores feasibility; the CLI, report and export do not).
        trial.set_user_attr("feasible", outcome.feasible)
        run.infeasible_because = outcome.infeasible_because()
        if run.infeasible_because:
            trial.set_user_attr("infeasible_because", run.infeasible_because)
        plan_file = scratch / f"plan-trial-{trial.number}.json"
        plan_file.write_text(plan.to_json())
        upload_artifact(artifact_store=self.artifact_store, file_path=str(plan_file), study_or_trial=trial)
        for sample in outcome.samples:
            upload_artifact(artifact_store=self.artifact_store, file_path=str(sample), study_or_trial=trial)
        # Optuna first: a process killed between the two writes leaves a result our tables take
        # from Optuna later (recover_stale_trials), never a row Optuna would fail and re-run.
        self.study.tell(trial, list(values))
        run.told = True
        self.store.finish_trial(
            study_name=r.study, trial_number=trial.number, state="COMPLETE", objectives=outcome.objectives,
            feasible=outcome.feasible, metrics=outcome.metrics, finetune_steps=outcome.steps_done,
            finetune_curve=outcome.curve,
        )
        self._after_trial(run)

    def _finish_failed(self, run: _Running, state: str, reason: str) -> bool:
        """Record the trial ``state`` (FAIL or PRUNED) with ``reason``; False when Optuna had
        already finished it (this run told it, or another worker failed it as stale): our
        tables then take Optuna's end."""
        trial = run.trial
        if run.told:  # failed after Optuna had the result (a reporter, say): the trial keeps its state
            self._mirror_optuna(run)
            return False
        finished = self.storage.get_trial(trial._trial_id).state.is_finished()
        if not finished:
            try:
                trial.set_user_attr("failure_reason", reason)
                self.study.tell(trial, state=TrialState[state])
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError):  # finished meanwhile
                finished = True
        if finished:
            run.told = True
            self._mirror_optuna(run)
            return False
        run.told = True
        if self.store.trial(self.r.study, trial.number) is None:
            self.store.begin_trial(
                run_id=self.run_id, study_name=self.r.study, trial_number=trial.number,
                optuna_trial_id=trial._trial_id, device_info={}, baseline=run.baseline,
            )
        self.store.finish_trial(
            study_name=self.r.study, trial_number=trial.number, state=state, failure_reason=reason,
            finetune_steps=run.steps_done,
        )
        self._after_trial(run)
        return True

    def _mirror_optuna(self, run: _Running) -> None:
        """Our row of the trial takes the end Optuna recorded, when our own write did not happen."""
        frozen = self.storage.get_trial(run.trial._trial_id)
        row = self.store.trial(self.r.study, run.trial.number)
        if frozen.state.is_finished() and row is not None and row.state == "RUNNING":
            mirror_trial(self.store, self.r.study, frozen)

    def _same_plan(self, number: int, plan: CompressionPlan) -> FrozenTrial | None:
        """An earlier complete trial of the same plan and fine-tune steps (a sampler may ask for a plan twice)."""
        key = _plan_key(plan.to_dict())
        if key is None:
            return None
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            same = t.number != number and t.user_attrs.get("steps") == self.r.steps
            if same and _plan_key(t.user_attrs.get("plan")) == key:
                return t
        return None

    def _reuse(self, run: _Running, twin: FrozenTrial) -> None:
        """Complete ``run`` with the result of ``twin``, which ran the same plan: the sampler
        learns the plan's objectives again without a second compression and fine-tune."""
        trial = run.trial
        for key in ("metrics", "device", "feasible", "infeasible_because", "finetune_curve", "finetune_group_curves"):
            if key in twin.user_attrs:
                trial.set_user_attr(key, twin.user_attrs[key])
        run.infeasible_because = twin.user_attrs.get("infeasible_because", "")
        trial.set_user_attr("finetune_steps", 0)
        trial.set_user_attr("repeats", twin.number)
        note = f"the plan of trial {twin.number}: its result stands (not compressed or fine-tuned again)"
        trial.set_user_attr("notes", [*twin.user_attrs.get("notes", []), note])
        for key, value in twin.system_attrs.items():
            if key.startswith(CONSTRAINT_PREFIX):
                trial.set_constraint(key.removeprefix(CONSTRAINT_PREFIX), value)
        earlier = self.store.trial(self.r.study, twin.number)
        self.study.tell(trial, list(twin.values))  # Optuna first, as in _finish_complete
        run.told = True
        self.store.finish_trial(
            study_name=self.r.study, trial_number=trial.number, state="COMPLETE", objectives=Objectives(*twin.values),
            feasible=twin.user_attrs.get("feasible"), metrics=earlier.metrics if earlier is not None else (),
            finetune_steps=0,
        )
        self._after_trial(run, timed=False)

    def _after_trial(self, run: _Running, timed: bool = True) -> None:
        if timed:  # a reused result took no time: it would make the ETA too short
            self.durations.append((run.baseline, time.monotonic() - run.started, run.steps_done > 0))
        rows = self._rows()
        row = next((x for x in rows if x.number == run.trial.number), None)
        if row is not None:
            if row.state == "COMPLETE" and run.infeasible_because:
                row = dataclasses.replace(row, reason=run.infeasible_because)
            self.reporter.trial_finished(row, rows)

    # ------------------------------------------------------------------ helpers
    def _abort_rule(self) -> AbortRule:
        ft = self.r.space.finetune
        reference = abort_reference(feasible_front(self.study.get_trials(deepcopy=False)), steps=self.r.steps)
        return AbortRule(
            reference=reference, patience=ft.patience, far_behind=ft.far_behind, warmup_checks=ft.warmup_checks
        )

    def _drop_dominated_students(self) -> None:
        """Keep the student checkpoints of the feasible Pareto set only (dominated trials never
        return); while no trial is feasible, those of the unconstrained front, for an explicit export."""
        root = students_dir(self.r.artifacts, self.r.study)
        if not root.is_dir():
            return
        # The trials in flight before the front: one that ends in between is then in one of them.
        running = {
            f"trial-{t.number:04d}"
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        }
        keep = {f"trial-{t.number:04d}" for t in kept_front(self.study.get_trials(deepcopy=False))}
        for child in root.iterdir():
            # "trial-0007.tmp-<pid>": trial 7's student being written (by any worker sharing the folder)
            if child.is_dir() and child.name.split(".tmp-")[0] not in keep | running:
                shutil.rmtree(child, ignore_errors=True)

    def _say_if_nothing_feasible(self) -> None:
        """When trials completed but none is feasible: a line naming the closest ones and the
        command that exports one anyway."""
        c = self.r.config
        line = nothing_feasible_line(
            self.study.get_trials(deepcopy=False), self.r.artifacts, self.r.study, self.r.target.name,
            target_arg=c.target, storage=c.storage, artifacts=c.artifacts, out=c.out, export_format=c.export_format,
        )
        if line:
            self.reporter.phase(-1, line)

    def _rows(self) -> tuple[TrialRow, ...]:
        rows = [_row(t) for t in self.store.trials(self.r.study) if t.state != "RUNNING"]
        return mark_pareto(rows)

    def _eta(self) -> float | None:
        """Remaining trials x the mean of the last three searched trials (until there are some: of the
        fine-tuned baselines, then of any; the teacher baselines do not fine-tune); with a timeout,
        only the trials that still start before it count."""
        searched = [d for b, d, _ in self.durations if b is None]
        tuned = [d for _, d, fine_tuned in self.durations if fine_tuned]
        recent = (searched or tuned or [d for _, d, _ in self.durations])[-3:]
        if not recent:
            return None
        mean = sum(recent) / len(recent)
        remaining = max(0, self.r.n_trials - count_done(self.study))
        timeout = self.r.config.timeout_s
        if timeout is not None and mean > 0:
            left = max(0.0, timeout - (time.monotonic() - self.loop_started))
            remaining = min(remaining, max(1, math.ceil(left / mean)))  # the trial running at the timeout finishes
        return remaining * mean

    def _export(self) -> tuple[tuple[Path, ...], str]:
        self.reporter.phase(-1, "export")
        try:
            paths = export_pareto(
                storage=self.url, study_name=self.r.study, target=self.r.target, out_dir=self.r.out,
                artifacts=self.r.artifacts, store=self.store, run_id=self.run_id,
                export_format=self.r.config.export_format,
                progress=lambda line: self.reporter.phase(-1, f"export: {line}"),  # minutes a full-size bundle
            )
        except AutocompressError as e:
            self.reporter.exported((), str(e))
            return (), str(e)
        except OSError as e:  # a full disk, an unwritable --out: the trials are in the study all the same
            c = self.r.config
            again = export_command(self.r.study, c.target, [], storage=c.storage, artifacts=c.artifacts, out=c.out,
                                   export_format=c.export_format)  # fmt: skip
            why = f"{e.strerror or e}: {e.filename}" if e.filename else str(e)
            message = f"the export to {self.r.out} failed ({why}); the trials are saved: make room, then run {again}"
            self.reporter.exported((), message)
            return (), message
        self.reporter.exported(tuple(paths), "")
        return tuple(paths), ""

    def _settings(self) -> dict[str, Any]:
        c = self.r.config
        return {
            "trials": self.r.n_trials, "steps": self.r.steps, "timeout_s": c.timeout_s, "seed": c.seed,
            "device": self.r.device, "out": str(self.r.out), "space": self.r.space.source,
        }

    def _note(self) -> str:
        """The study's description for the dashboard, which shows the objectives by name only."""
        t = self.r.target
        budget = f"memory budget {t.memory_budget_bytes / 2**30:.2f} GiB, real-time factor budget {t.rtf_budget:g}"
        labels = self.runner.labels()
        how = "; ".join(f"{name} {labels[name]}" for name in METRIC_NAMES if labels.get(name))
        return (
            f"target {t.name}: {t.description}; {budget}\n"
            f"voice: {self.r.voice.describe()}\n"
            f"search space {self.r.space.summary()}"
            + (f"\nobjectives: {how}" if how else "")
        )

    def _set_study_labels(self) -> None:
        self.study.set_user_attr("target", self.r.target.name)
        self.study.set_user_attr("objective_units", {"quality": "score", "latency_ms": "ms", "memory_mb": "MiB"})
        self.study.set_user_attr("objective_kinds", dict(self.labels))

    def _info(self, recovered: list[int]) -> SearchInfo:
        r = self.r
        return SearchInfo(
            study=r.study, target=r.target.name, target_description=r.target.description,
            storage=display_url(self.url), artifacts=r.artifacts, out=r.out if r.config.export else None, space=r.space.name,
            space_summary=r.space.summary(), voice=r.voice.describe(), device=r.device, n_trials=r.n_trials,
            n_done=count_done(self.study), steps=r.steps, timeout_s=r.config.timeout_s,
            latency_label=self.labels.get("latency_ms", ""), memory_label=self.labels.get("memory_mb", ""),
            quality_label=self.labels.get("quality", ""),
        )


def _row(t: TrialRecord) -> TrialRow:
    duration = 0.0
    if t.finished_at is not None and t.started_at is not None:
        duration = (t.finished_at - t.started_at).total_seconds()
    return TrialRow(
        number=t.trial_number, state=t.state, label=t.plan_summary or (t.baseline or ""), quality=t.quality,
        latency_ms=t.latency_ms, memory_mb=t.memory_mb, feasible=t.feasible, reason=t.failure_reason or "",
        duration_s=duration, steps_done=t.finetune_steps,
    )


CONSTRAINT_PREFIX = "constraints:"  # Optuna's system attributes holding a trial's constraints


def _plan_key(plan: Any) -> str | None:
    """What a plan does, whatever its name and its groups left as they were: equal for two
    trials that run the same compression."""
    try:
        groups = CompressionPlan.from_dict(plan).groups
    except (AutocompressError, AttributeError, KeyError, TypeError, ValueError):  # no readable plan: matches none
        return None
    changed = CompressionPlan(groups={g: gp for g, gp in groups.items() if not gp.is_identity})
    return json.dumps(changed.to_dict()["data"]["groups"], sort_keys=True)


def _metric_dict(m: Any) -> dict[str, Any]:
    """A metric as the trial's ``metrics`` user attribute holds it; its note only when it has one."""
    out = {"name": m.name, "value": float(m.value), "unit": m.unit, "kind": m.kind, "device": m.device}
    note = getattr(m, "note", "")
    if note:
        out["note"] = str(note)
    return out


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


__all__ = ["RunnerFactory", "default_runner_factory", "run_search"]
