"""The Optuna side of a search: storage with heartbeats, the study's identity, baselines, recovery.

A study is created once per (name, storage) with three objectives (quality up, latency and
memory on the target down) and remembers what it was created for (target, search space) in
its user attributes; resuming it for anything else is refused. Baselines (teacher fp32, teacher
fp16, the seed recipe) are enqueued when the study is created. Trials left RUNNING by a process
that died are failed and re-enqueued, either at once (their run's process is gone from this
machine) or through Optuna's RDB heartbeat (another machine, or a hung process).
"""

from __future__ import annotations

import copy
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from autocompress.exceptions import SearchError, StoreError
from autocompress.search.plans import BASELINES
from autocompress.store import (
    Objectives,
    Store,
    as_utc,
    database_reason,
    display_url,
    driver_hint,
    engine_kwargs,
    utcnow,
)

DIRECTIONS = ("maximize", "minimize", "minimize")
METRIC_NAMES = ["quality", "latency_ms", "memory_mb"]
# The trial metric each objective is read from (memory is stored in bytes, shown in MiB).
OBJECTIVE_METRICS = {"quality": "quality", "latency_ms": "latency_ms", "memory_mb": "memory_bytes"}
IDENTITY_ATTR = "autocompress"  # study user attribute holding what the study was created for
# How a trial becomes its three figures: the fine-tuning recipe, the scorers, the projections.
# Raised whenever a change makes new trials' figures incomparable with older ones; a study
# remembers the version it was created with, and a resume under another one is refused (a
# Pareto front of mixed trials would compare numbers that mean different things).
# 1: before the version was recorded; 2: soft-target GPT fine-tuning, best-check restore, the
# demo prompted with upstream's 0.6 s of silence, a user voice by an item of 3 to 10 s,
# projected memory with codebook, int4 scales and fp32 groups; 3: linear weights at 4 bits or
# fewer scored as MatMulNBits stores them (blocks of 32 inputs, not per channel); 4: MCD floors
# each signal at its own peak (a change of level alone scores 0), a silent sentence scores
# speaker cosine 0 for itself only (it zeroed the whole trial's), and the fine-tune's cosine
# learning rate starts at its peak step (it began one step late and never reached its end), and
# layers with 5- to 8-bit weights take int8 inputs, as their W8A8 export runs them; 5: those
# int8 inputs are scored with static ranges calibrated on the export's sentences, symmetric or
# asymmetric u8 as the target's bundles ship them (they were scaled per call, finer than the
# shipped graphs), and STOI frames as its reference does (it took
# one frame more, which moved short clips by up to 0.014); 6: the GPT attention's packed q/k/v
# projection takes int8 inputs too, as its exported MatMul does (only its weight was rounded);
# 7: a static s8 input below its range saturates at -128 steps, as QuantizeLinear does (-127);
# a layer's input rounds to int8 only where the export ships it W8A8 (int8 activations left
# weight-only int4/int2 layers and fp32 graphs with fp32 inputs, fp16 ones with fp16), a group
# exported as an fp16 graph takes fp16 inputs whatever its plan's activations, and a group whose
# int8 weights fall back to fp16 on a target without int8 says fp16 activations too; a per-op-kind
# weight override is rounded, projected and timed at the rung the export stores it at (one below its
# group's rung with the group, e.g. the seed recipe's int8 ref_enc linears as fp16; one above
# kept at fp32), and the seed recipe's ref_enc is plain fp16; projected latency reads a W8A8
# layer's input at 1 byte an element (its QuantizeLinear's int8 output; it was read as float),
# and a GPT decode step each cached key and value once (the math attention path's scaling of the
# keys counted the key cache three times); MCD counts what the student sounds where the teacher is
# silent (a run-on of hiss after the sentence scored 0 dB), and the composite's MCD term is
# exp(-MCD / 20 dB), not linear to 0 at 10 dB (every compressed demo student scored 0 on it);
# 8: the release floor also holds each sentence on its own (silent, 0.6-1.5x the teacher's
# duration, speaker cosine 0.75, MOS 1.0 under its floor), so one broken sentence in ten or a
# run-on past the end is no longer released on its means; bf16 is scored, projected and deployed
# as the fp16 the export stores it as, and an int4 / int2 or fp32 group's inputs are scored fp32
# as its graph runs them (fp16 activations were rounded); fine-tuning takes the teacher GPT's
# logits per item, computed alone (rounding-level changes against the batched teacher);
# 9: on a target that runs fp16 (every GPU), an int8 or int4 / int2 group's graph runs its float
# parts in fp16 (KV cache, norms, attention, activations between layers), as its export now
# ships it: weight-only and kept-fp32 layers' inputs are scored fp16, and the projection counts
# fp16 float math and KV cache there (they were fp32, which made int8 larger and slower than fp16).
SCORING_VERSION = 9
HEARTBEAT_INTERVAL_S = 10  # a RUNNING trial's heartbeat is written this often
HEARTBEAT_GRACE_S = 60  # ... and the trial is stale after this long without one
MAX_RETRY = 2  # a trial lost to a dead process is retried at most this often

_ASK_WARNING = "Heartbeat of storage is supposed to be used with Study.optimize."


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Optuna's "experimental" notes for the features we use on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(url: str) -> RDBStorage:
    """Open Optuna's RDB storage at ``url`` with heartbeats and retry of stale trials.

    Raises:
        StoreError: when the database cannot be opened.
    """
    try:
        with _quiet():
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs(url),
                heartbeat_interval=HEARTBEAT_INTERVAL_S,
                grace_period=HEARTBEAT_GRACE_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
    except Exception as e:  # noqa: BLE001 - Optuna raises several unrelated types here
        no_driver = isinstance(e, ImportError) and url.startswith("postgresql")  # not a server that refused
        hint = driver_hint(e, url) if no_driver else ""
        raise StoreError(f"cannot open Optuna storage at {display_url(url)}: {database_reason(e)}{hint}") from e


def identity(
    target: str, space_name: str, space_sha256: str, voice: dict[str, Any], voice_sha256: str | None = None,
    measured_on: str | None = None,
    target_sha256: str | None = None,
    data_sha256: str | None = None,
) -> dict[str, Any]:
    """The user attribute a study is created with (``voice_sha256``: of the GPT and SoVITS files;
    ``measured_on``: the device that measures a measured target's latency, threads included;
    ``scoring``: :data:`SCORING_VERSION`; ``target_sha256``: of the target's figures;
    ``data_sha256``: of the experiment folder's item lists)."""
    ident = {"target": target, "space": space_name, "space_sha256": space_sha256, "voice": voice,
             "scoring": SCORING_VERSION}
    if voice_sha256 is not None:
        ident["voice_sha256"] = voice_sha256
    if measured_on is not None:
        ident["measured_on"] = measured_on
    if target_sha256 is not None:
        ident["target_sha256"] = target_sha256
    if data_sha256 is not None:
        ident["data_sha256"] = data_sha256
    return ident


def check_resumable(storage: RDBStorage, name: str, ident: dict[str, Any]) -> None:
    """Raise ``SearchError`` when a study of this name exists for another target, space or voice.

    Creates nothing, so a search can check before it spends time loading its voice.
    """
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return
    _check_identity(study, name, ident)


def is_created(storage: RDBStorage, name: str) -> bool:
    """Whether autocompress has made a study of this name: :func:`open_study` resumes it rather than creating it."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return False
    return study.user_attrs.get(IDENTITY_ATTR) is not None


def _check_identity(study: optuna.Study, name: str, ident: dict[str, Any]) -> bool:
    """False for a study autocompress did not stamp yet; raise ``SearchError`` when it was stamped otherwise."""
    if list(study.directions) != [optuna.study.StudyDirection.MAXIMIZE] + [optuna.study.StudyDirection.MINIMIZE] * 2:
        raise SearchError(f"study {name!r} exists with other objectives; hint: choose another --study")
    existing = study.user_attrs.get(IDENTITY_ATTR)
    if existing is None:
        if study.trials:
            raise SearchError(f"study {name!r} exists but was not created by autocompress; hint: choose another --study")
        return False
    for key, flag in (("target", "--target"), ("space_sha256", "--space")):
        if existing.get(key) != ident[key]:
            was = existing.get("target") if key == "target" else existing.get("space")
            now = ident["target"] if key == "target" else f"{ident['space']} (different content)"
            other = re.sub(r"[^A-Za-z0-9_.\-]", "-", f"{name[:100]}-{ident['target']}") if key == "target" else "NAME"
            raise SearchError(
                f"study {name!r} was created for {flag.lstrip('-')} {was!r}, not {now!r}; "
                f"resume it with the same {flag}, or start a new study with --study {other}"
            )
    # Recorded facts a resume must share (when both sides recorded them), and why it is refused otherwise.
    why_not = {
        "target_sha256": f"was created for target {ident['target']!r} with other figures (its file changed, or "
        "this is another file of that name), and its projections would not compare; resume it with the "
        "figures it was created with",
        "data_sha256": "was created for other data (its experiment folder's 2-name2text.txt or "
        "6-name2semantic.tsv changed), and its trials were scored on other items; resume it with the data it "
        "was created with",
        "voice_sha256": "was created for another voice (its GPT and SoVITS files differ from these); resume "
        "it with the files it was created with",
        "measured_on": f"measures latency on {existing.get('measured_on')!r}; this run would measure on "
        f"{ident.get('measured_on')!r}, and its figures would not compare; resume it on the same device and "
        "thread count (OMP_NUM_THREADS)",
    }
    was_scoring, now_scoring = existing.get("scoring", 1), ident.get("scoring", SCORING_VERSION)
    if was_scoring != now_scoring:
        raise SearchError(
            f"study {name!r} was scored by an autocompress of scoring version {was_scoring}, this one scores with "
            f"version {now_scoring}, and new trials would not compare with its own; `autocompress report` and "
            f"`autocompress export` still read it; start a new study to search on, e.g. --study "
            f"{name[:100]}-v{now_scoring}"
        )
    differ = [key for key in why_not if existing.get(key) and ident.get(key) and existing[key] != ident[key]]
    if "voice_sha256" in differ and "data_sha256" in differ:  # another voice altogether, not edited files
        voice = existing.get("voice")
        folder = voice.get("data") if isinstance(voice, dict) else None
        raise SearchError(
            f"study {name!r} was created for another voice (other GPT and SoVITS files, and other items in its "
            f"experiment folder{f' {folder}' if folder else ''}); start a new study with --study NAME, or resume it "
            "with the files and folder it was created with"
        )
    if differ:
        raise SearchError(f"study {name!r} {why_not[differ[0]]}, or start a new study with --study NAME")
    return True


def open_study(
    storage: RDBStorage,
    name: str,
    ident: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    note: str,
    baselines: Sequence[str] = BASELINES,
) -> tuple[optuna.Study, bool]:
    """Create the study or resume it; return it and whether it was created now.

    Raises:
        SearchError: when an existing study was created for another target, search space or voice.
    """
    study = optuna.create_study(
        storage=storage, study_name=name, directions=list(DIRECTIONS), sampler=sampler, load_if_exists=True
    )
    if _check_identity(study, name, ident):
        return study, False
    study.set_user_attr(IDENTITY_ATTR, ident)
    study.set_user_attr("summary", note)
    with _quiet():
        study.set_metric_names(list(METRIC_NAMES))
    _save_dashboard_note(study, note)
    for b in baselines:
        study.enqueue_trial({}, user_attrs={"baseline": b})
    return study, True


def _save_dashboard_note(study: optuna.Study, note: str) -> None:
    try:
        from optuna_dashboard import save_note
    except ImportError:  # optuna-dashboard is an optional extra; the user attribute holds the same text
        return
    save_note(study, "```\n" + note + "\n```")


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` without Optuna's warning that heartbeats are meant for ``optimize`` (we run them)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ASK_WARNING)
        return study.ask()


@contextmanager
def heartbeat(storage: RDBStorage, trial_id: int) -> Iterator[None]:
    """Write the trial's heartbeat every ``HEARTBEAT_INTERVAL_S`` seconds while the block runs."""
    with _beating(lambda: storage.record_heartbeat(trial_id), f"heartbeat-{trial_id}"):
        yield


@contextmanager
def run_heartbeat(store: Store, run_id: int) -> Iterator[None]:
    """Write the search run's heartbeat every ``HEARTBEAT_INTERVAL_S`` seconds while the block runs,
    so that other machines can tell when it died (:meth:`Store.reap_dead_runs`)."""
    with _beating(lambda: store.beat_run(run_id), f"run-heartbeat-{run_id}"):
        yield


@contextmanager
def _beating(beat: Callable[[], None], name: str) -> Iterator[None]:
    """Call ``beat`` now, then every ``HEARTBEAT_INTERVAL_S`` seconds in a thread until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(HEARTBEAT_INTERVAL_S):
            try:
                beat()
            except Exception:  # noqa: BLE001 - a missed beat must not kill the search; the next one retries
                pass

    beat()
    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that were re-enqueued (they do not count as done)."""
    out: set[int] = set()
    with _quiet():
        for t in trials:
            out.update(RetryHeartbeatStaleTrialCallback.retry_history(t))
    return out


def count_done(study: optuna.Study) -> int:
    """Trials that count towards ``--trials``: finished in any state, minus those retried."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in trials if t.state in finished and t.number not in retried)


def count_running(study: optuna.Study) -> int:
    """Trials in flight now (in other workers, when this one is between trials)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


INTERRUPTS_ATTR = "autocompress:interrupts"  # system attribute: how often the user stopped a trial's earlier tries


def requeue(study: optuna.Study, number: int) -> None:
    """Enqueue a failed trial again (same parameters and attributes), as for a stale one.

    For a trial the user interrupted: it is enqueued however often that happened, and its
    interruptions do not count against the ``MAX_RETRY`` tries a dying process gets.
    """
    frozen = next(t for t in study.get_trials(deepcopy=True) if t.number == number)
    frozen.system_attrs = {**frozen.system_attrs, INTERRUPTS_ATTR: _interrupts(frozen) + 1}
    with _quiet():
        RetryHeartbeatStaleTrialCallback(max_retry=None)(study, frozen)


def _interrupts(trial: FrozenTrial) -> int:
    return int(trial.system_attrs.get(INTERRUPTS_ATTR, 0))


STALE_REASON = "stale: the process running this trial died; re-enqueued"
GIVEN_UP_REASON = (f"stale: the process running this trial died, as did those of its {MAX_RETRY} earlier tries; "
                   "not retried again (does its plan crash the worker, say out of memory?)")
GONE_REASON = "the process recording this trial died before our tables had its end"


def recover_stale_trials(study: optuna.Study, store: Store, run_id: int) -> list[int]:
    """Fail (and re-enqueue) trials whose process is gone; mirror it in our tables.

    A RUNNING trial is stale when its run is over (its process died on this machine, or the run
    ended), when Optuna's heartbeat check says so (another machine, or a hung process), or when
    it never wrote a heartbeat and started more than ``HEARTBEAT_GRACE_S`` ago. Our rows left
    RUNNING behind a trial Optuna finished (a process killed between the two writes) take
    Optuna's result. Returns the numbers of the trials this call failed.
    """
    name = study.study_name
    storage = study._storage  # the RDBStorage we opened; Optuna exposes no public accessor
    # Optuna's trials before our tables: a trial asked after this snapshot belongs to a run the next one sees.
    trials = study.get_trials(deepcopy=False)
    store.reap_dead_runs(name, silent_after_s=HEARTBEAT_GRACE_S)
    runs = store.runs(name)
    over = {r.id for r in runs if r.status != "running"}
    live_others = any(r.status == "running" and r.id != run_id for r in runs)
    rows = {t.trial_number: t for t in store.trials(name, states=["RUNNING"])}
    running = [t for t in trials if t.state == TrialState.RUNNING]
    stale = []
    for t in running:
        row = rows.get(t.number)
        if (row is not None and row.run_id in over) or (row is None and not live_others):
            stale.append(t._trial_id)
    started = {n: r.started_at for n, r in rows.items() if r.started_at is not None}
    stale += _stale_by_heartbeat(storage, study._study_id, running, started)
    failed, given_up = _fail_and_retry(study, storage, list(dict.fromkeys(stale)))
    for number in failed:
        if store.trial(name, number) is not None:
            reason = GIVEN_UP_REASON if number in given_up else STALE_REASON
            store.finish_trial(study_name=name, trial_number=number, state="FAIL", failure_reason=reason)
    _mirror_unrecorded(store, name, [t for t in trials if t.number in rows and t.number not in failed], rows, over)
    return failed


def _stale_by_heartbeat(
    storage: RDBStorage, study_id: int, running: Sequence[FrozenTrial], started: dict[int, datetime]
) -> list[int]:
    """Ids of RUNNING trials whose heartbeat stopped, or that never wrote one within the grace period.

    How long a trial has run is read from our row's UTC start (``started``, by trial number):
    Optuna records the local time of the worker's own time zone, which another machine's clock
    would read as hours off. A trial without our row falls back to Optuna's.
    """
    from optuna.storages._rdb.models import TrialHeartbeatModel

    stale = list(storage._get_stale_trial_ids(study_id))
    ids = [t._trial_id for t in running]
    if not ids:
        return stale
    engine = getattr(storage, "_backend", storage).engine  # a study wraps our RDBStorage in Optuna's cache
    with engine.connect() as conn:
        beating = set(conn.execute(
            sa.select(TrialHeartbeatModel.trial_id).where(TrialHeartbeatModel.trial_id.in_(ids))
        ).scalars())
    grace = timedelta(seconds=HEARTBEAT_GRACE_S)
    limit, local_limit = utcnow() - grace, datetime.now() - grace  # Optuna stores local naive times

    def long_ago(t: FrozenTrial) -> bool:
        if t.number in started:
            return as_utc(started[t.number]) < limit
        return t.datetime_start is not None and t.datetime_start < local_limit

    return stale + [t._trial_id for t in running if t._trial_id not in beating and long_ago(t)]


def _fail_and_retry(study: optuna.Study, storage: RDBStorage, trial_ids: Sequence[int]) -> tuple[list[int], set[int]]:
    """Fail these RUNNING trials and re-enqueue each that has retries left; return the numbers of
    those this call failed (another worker may fail the same trial at the same time: only one of
    them re-enqueues it), and of those among them it did not re-enqueue."""
    failed, given_up = [], set()
    for trial_id in trial_ids:
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker finished or failed it meanwhile
        frozen = copy.deepcopy(storage.get_trial(trial_id))
        failed.append(frozen.number)
        with _quiet():  # the tries the user interrupted are no deaths: they do not use up the retries
            if len(RetryHeartbeatStaleTrialCallback.retry_history(frozen)) - _interrupts(frozen) >= MAX_RETRY:
                given_up.add(frozen.number)
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY + _interrupts(frozen))(study, frozen)
    return failed, given_up


def _mirror_unrecorded(store: Store, name: str, trials: Sequence[FrozenTrial], rows: dict[int, Any], over: set[int]) -> None:
    """Give our RUNNING rows the end Optuna recorded, once their process cannot write it any more
    (its run is over, or the trial ended more than ``HEARTBEAT_GRACE_S`` ago)."""
    limit = utcnow() - timedelta(seconds=HEARTBEAT_GRACE_S)
    for t in trials:
        if not t.state.is_finished():
            continue
        if rows[t.number].run_id in over or _ended_before(t, rows[t.number], limit):
            mirror_trial(store, name, t)


def _ended_before(trial: FrozenTrial, row: Any, limit: datetime) -> bool:
    """Whether ``trial`` ended before ``limit`` (UTC): our row's UTC start plus the run time Optuna
    recorded (its two local times share one time zone, whichever the worker's)."""
    if trial.datetime_complete is None or trial.datetime_start is None or row.started_at is None:
        return False
    return as_utc(row.started_at) + (trial.datetime_complete - trial.datetime_start) < limit


def mirror_trial(store: Store, name: str, trial: FrozenTrial) -> None:
    """Record in our tables how Optuna says a finished trial of study ``name`` ended (metrics
    from its user attributes); a trial our tables never had is left out."""
    if store.trial(name, trial.number) is None:
        return
    attrs = trial.user_attrs
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        store.finish_trial(
            study_name=name, trial_number=trial.number, state="COMPLETE", objectives=Objectives(*trial.values),
            feasible=attrs.get("feasible"), metrics=[SimpleNamespace(**m) for m in attrs.get("metrics", [])],
            finetune_steps=attrs.get("finetune_steps"), finetune_curve=attrs.get("finetune_curve"),
        )
        return
    state = trial.state.name if trial.state.name in ("PRUNED", "FAIL") else "FAIL"
    store.finish_trial(
        study_name=name, trial_number=trial.number, state=state,
        failure_reason=attrs.get("failure_reason") or GONE_REASON, finetune_steps=attrs.get("finetune_steps"),
    )


__all__ = [
    "DIRECTIONS",
    "HEARTBEAT_GRACE_S",
    "HEARTBEAT_INTERVAL_S",
    "IDENTITY_ATTR",
    "METRIC_NAMES",
    "SCORING_VERSION",
    "STALE_REASON",
    "ask",
    "count_done",
    "count_running",
    "heartbeat",
    "run_heartbeat",
    "identity",
    "is_created",
    "mirror_trial",
    "open_storage",
    "open_study",
    "recover_stale_trials",
    "requeue",
    "retried_numbers",
]
