"""The feasible Pareto set of a study, and its export to a folder.

A trial is on the feasible Pareto set when it completed, meets every constraint (the target's
memory and latency budgets and the quality floor: all constraint values <= 0) and no other such
trial is at least as good on all three objectives and better on one.

While no completed trial is feasible, the search keeps the students of the unconstrained front
(:func:`kept_front`) instead, so that the trials nearest to feasible can still be exported when
asked for by number (``export_pareto(trials=...)``).

The export writes one folder per Pareto trial into a temporary folder beside ``out_dir`` and
renames it into place, so ``out_dir`` is either the previous export or the complete new one.
Each trial folder is an ONNX bundle when :mod:`autocompress.export` provides ``export_bundle``,
otherwise the fine-tuned student's checkpoints (upstream ``.ckpt`` / ``.pth``) with its plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autocompress.exceptions import AutocompressError, ConfigError, ExportError, StoreError
from autocompress.runtime.files import sha256_file
from autocompress.runtime.manifest import hash_files, read_manifest
from autocompress.search.paths import artifacts_dir, check_export_dir, student_dir, students_dir, teacher_cache_path
from autocompress.search.progress import TrialRow
from autocompress.search.study import DIRECTIONS, IDENTITY_ATTR, OBJECTIVE_METRICS
from autocompress.store import Store, pid_alive
from autocompress.targets import Target

EXPORT_FORMATS = ("onnx", "checkpoint")

# Builds one trial's export folder ``dest`` from its student folder; returns the bundle kind.
TrialExporter = Callable[[FrozenTrial, Path, Path, Any], str]


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str] = DIRECTIONS) -> bool:
    """True when ``a`` is at least as good as ``b`` on every objective and better on one."""
    better = False
    for x, y, d in zip(a, b, directions):
        if d == "maximize":
            x, y = -x, -y
        if x > y:
            return False
        if x < y:
            better = True
    return better


def is_feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0.0 for v in trial.constraints.values())


def non_dominated(values: Sequence[Sequence[float]], directions: Sequence[str] = DIRECTIONS) -> list[bool]:
    """For each point, whether no other point :func:`dominates` it.

    Points are taken in lexicographic order (all objectives minimised), where none can dominate
    one before it, and each is checked against the front kept so far only: a study of thousands of
    trials is a front in a fraction of a second. With NaN values (neither better nor worse, as in
    :func:`dominates`) every pair is compared.
    """
    import numpy as np

    if not len(values):
        return []
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    v = np.asarray(values, dtype=np.float64) * sign  # all minimised
    if np.isnan(v).any():
        pairs = [(v <= p) | np.isnan(v) | np.isnan(p) for p in v]
        return [not bool((pairs[i].all(axis=1) & (v < p).any(axis=1)).any()) for i, p in enumerate(v)]
    keep = [False] * len(v)
    front = np.empty((0, v.shape[1]))
    for i in np.lexsort(v.T[::-1]):
        p = v[i]
        if not ((front <= p).all(axis=1) & (front < p).any(axis=1)).any():
            keep[i] = True
            front = np.vstack([front, p])
    return keep


def completed(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that completed with objective values, in their order."""
    return [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]


def feasible_front(trials: Sequence[FrozenTrial], directions: Sequence[str] = DIRECTIONS) -> list[FrozenTrial]:
    """Completed, feasible trials no other completed feasible trial dominates, by number."""
    ok = [t for t in completed(trials) if is_feasible(t)]
    return [t for t, kept in zip(ok, non_dominated([t.values for t in ok], directions)) if kept]


def unconstrained_front(trials: Sequence[FrozenTrial], directions: Sequence[str] = DIRECTIONS) -> list[FrozenTrial]:
    """Completed trials no other completed trial dominates, constraints ignored, by number."""
    done = completed(trials)
    return [t for t, kept in zip(done, non_dominated([t.values for t in done], directions)) if kept]


def kept_front(trials: Sequence[FrozenTrial], directions: Sequence[str] = DIRECTIONS) -> list[FrozenTrial]:
    """The trials whose students the search keeps: the feasible front, or the unconstrained
    front while no completed trial is feasible."""
    return feasible_front(trials, directions) or unconstrained_front(trials, directions)


def violation(trial: FrozenTrial) -> float:
    """How far a trial is from feasible: the sum of its broken constraints (0 when feasible)."""
    return sum(max(0.0, float(v)) for v in trial.constraints.values())


def infeasible_reason(trial: FrozenTrial) -> str:
    """Which constraints a trial breaks, as the search recorded it ("" when feasible)."""
    if is_feasible(trial):
        return ""
    stored = trial.user_attrs.get("infeasible_because")
    if stored:
        return str(stored)
    return "; ".join(f"{k.replace('_', ' ')} exceeded by {v:.0%}" for k, v in trial.constraints.items() if v > 0)


def exportable(trials: Sequence[FrozenTrial], artifacts: Path, study_name: str) -> list[FrozenTrial]:
    """The completed trials whose student checkpoint is still on disk, by number."""
    done = completed(trials)
    return [t for t in done if _student_of(t, artifacts, study_name).is_dir()]


def closest_trials(
    trials: Sequence[FrozenTrial], artifacts: Path, study_name: str, n: int = 3
) -> list[FrozenTrial]:
    """Up to ``n`` exportable trials of the unconstrained front, nearest to feasible first (a
    trial that reused another's result is left out where that one is named)."""
    have = {t.number for t in exportable(trials, artifacts, study_name)}
    front = [t for t in unconstrained_front(trials) if t.number in have]
    front = [t for t in front if t.user_attrs.get("repeats") not in {f.number for f in front}]
    return sorted(front, key=lambda t: (violation(t), t.number))[:n]


def export_command(
    study_name: str,
    target: str,
    trials: Sequence[int],
    *,
    storage: str | None = None,
    artifacts: Path | None = None,
    out: Path | None = None,
    export_format: str = "onnx",
) -> str:
    """The ``autocompress export`` command line that exports ``trials`` (none: the feasible Pareto
    set), a password in the URL masked."""
    import shlex

    from autocompress.store import display_url
    from autocompress.store.urls import DEFAULT_STORAGE

    words = ["autocompress", "export", "--study", study_name, "--target", target]
    if storage is not None and storage != DEFAULT_STORAGE:
        words += ["--storage", display_url(storage)]
    if artifacts is not None:
        words += ["--artifacts", str(artifacts)]
    if out is not None:
        words += ["--out", str(out)]
    if export_format != "onnx":
        words += ["--export-format", export_format]
    if trials:
        words += ["--trial", *(str(n) for n in trials)]
    return shlex.join(words)


def nothing_feasible_line(
    trials: Sequence[FrozenTrial], students_in: Path, study_name: str, target: str, target_arg: str | None = None,
    **command: Any,
) -> str:
    """When trials completed but none is feasible for ``target`` (a name): one line saying so,
    naming the closest trials whose students are in the artifact folder ``students_in`` and the
    command that exports one (``target_arg``: the ``--target`` it was given, default ``target``;
    ``command``: :func:`export_command`'s keywords); "" otherwise."""
    done = completed(trials)
    if not done or any(is_feasible(t) for t in done):
        return ""
    closest = closest_trials(trials, students_in, study_name)
    head = f"no trial of study {study_name} is feasible for {target}"
    if not closest:
        return f"{head}; no trial's student is left to export"
    named = ", ".join(f"trial {t.number} ({infeasible_reason(t)})" for t in closest)
    return (f"{head}; the closest: {named}; to export one anyway: "
            f"{export_command(study_name, target_arg or target, [closest[0].number], **command)}")


def mark_pareto(rows: Sequence[TrialRow]) -> tuple[TrialRow, ...]:
    """Return ``rows`` with ``pareto`` set on the feasible Pareto set."""
    ok = [r for r in rows if r.state == "COMPLETE" and r.feasible and r.quality is not None]
    vecs = [(float(r.quality or 0.0), float(r.latency_ms or 0.0), float(r.memory_mb or 0.0)) for r in ok]
    front = {r.number for r, kept in zip(ok, non_dominated(vecs)) if kept}
    return tuple(replace(r, pareto=r.number in front) for r in rows)


def export_pareto(
    *,
    storage: str,
    study_name: str,
    target: str | Target,
    out_dir: Path,
    artifacts: Path | None = None,
    store: Store | None = None,
    run_id: int | None = None,
    exporter: TrialExporter | None = None,
    export_format: str = "onnx",
    progress: Callable[[str], None] | None = None,
    trials: Sequence[int] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Export the study's feasible Pareto trials into ``out_dir`` atomically; return their folders.

    With ``trials``, exactly those trial numbers instead, feasible or not; ``warn`` gets one line
    for each infeasible one, naming what it breaks (its ``trial.json`` and ``pareto.json`` say so too).

    ``export_format`` is ``"onnx"`` (checked ONNX bundles for the target) or ``"checkpoint"``
    (the fine-tuned students as upstream-format ``.ckpt`` / ``.pth`` files with their plans).
    ``progress`` gets a line as each trial's export starts (a full-size bundle takes minutes).

    Raises:
        ConfigError: the study does not exist, or was searched for another target (bad flags), or
            one of ``trials`` does not exist, did not complete or has no student left.
        ExportError: a trial's student checkpoint is missing or its export fails.
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError as e:
        raise ConfigError(f"no study named {study_name!r} in the storage; hint: check --study and --storage") from e
    from autocompress.targets import load_target

    # a Target, a shipped name, or a target file's path (named by its stem)
    target_obj = target if isinstance(target, Target) else load_target(target)
    _remove_orphans(Path(out_dir).absolute())  # first: it may put back the folder a killed export moved aside
    check_export_dir(out_dir, "--out", study_name, target_obj.name)  # before any work: it replaces the folder whole
    ident = study.user_attrs.get(IDENTITY_ATTR, {})
    if ident.get("target") not in (None, target_obj.name):
        raise ConfigError(
            f"study {study_name!r} was searched for target {ident.get('target')!r}, not {target_obj.name!r}; "
            "hint: export with the study's --target"
        )
    artifacts = artifacts_dir(storage, artifacts)
    all_trials = study.get_trials(deepcopy=False)
    voice = _StudyVoice(ident)
    if trials is None:
        front, same = _distinct(feasible_front(all_trials))
    else:
        front, same = _asked(all_trials, list(dict.fromkeys(trials)), artifacts, study_name, voice), {}
        for t in front:
            if not is_feasible(t) and warn is not None:
                warn(f"trial {t.number} is infeasible for {target_obj.name} ({infeasible_reason(t)}); exported as asked")
    if export_format not in EXPORT_FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {export_format!r}")
    reusable = exporter is None  # a caller's own exporter may write anything: always run it
    if exporter is None:
        exporter = (
            export_checkpoint if export_format == "checkpoint"
            else default_exporter(teacher_cache_path(artifacts, study_name))
        )
    reused: list[int] = []

    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    index = []
    kinds: dict[int, str] = {}
    try:
        for i, t in enumerate(front, 1):
            src = _student_of(t, artifacts, study_name)
            name = f"trial-{t.number:04d}"
            if not src.is_dir():
                if not trains_nothing(t):
                    raise ExportError(
                        f"trial {t.number}: its student checkpoint {src} is missing; hint: the artifact folder "
                        "must be the one the search used (--artifacts)"
                    )
                if voice.problem():
                    raise ExportError(f"trial {t.number}: its student checkpoint {src} is missing and cannot be "
                                      f"rebuilt from the study's voice: {voice.problem()}")
                from autocompress.compress.plan import CompressionPlan
                from autocompress.search.bundles import rebuild_untrained_student

                src = tmp / REBUILT_DIR / name
                rebuild_untrained_student(CompressionPlan.from_dict(t.user_attrs["plan"]), voice.gpt, voice.sovits, src)
                if progress is not None:
                    progress(f"trial {t.number}: its student is gone from the artifact folder; rebuilt it from the "
                             f"study's voice files (its plan trains nothing): {voice.gpt}, {voice.sovits}")
            note = ""
            key = _export_key(t, src, target_obj, export_format, teacher_cache_path(artifacts, study_name))
            if reusable and (kind := _reuse(out_dir / name, key, src, tmp / name)):
                kinds[t.number] = kind  # the earlier export of this trial, unchanged: linked, not rebuilt
                reused.append(t.number)
                (tmp / name / "trial.json").unlink()  # a link to the earlier export's file: replaced, not rewritten
                if progress is not None:
                    progress(f"trial {t.number} ({i} of {len(front)}): unchanged since the last export, kept")
            else:
                if progress is not None:
                    what = "checkpoints" if exporter is export_checkpoint else f"{export_format} for {target_obj.name}"
                    progress(f"trial {t.number} ({i} of {len(front)}): exporting {what} ...")
                try:
                    kinds[t.number] = exporter(t, src, tmp / name, target_obj)
                except (AutocompressError, RuntimeError, ValueError, OSError) as e:
                    if exporter is export_checkpoint:
                        raise
                    # One trial that cannot become a bundle must not cost the others their export.
                    note = f"ONNX export failed ({_first_line(e)}); exported the student's checkpoints instead"
                    shutil.rmtree(tmp / name, ignore_errors=True)
                    kinds[t.number] = export_checkpoint(t, src, tmp / name, target_obj)
            record = {**_trial_record(t, kinds[t.number]), "export_note": note, "export_key": key}
            (tmp / name / "trial.json").write_text(json.dumps(record, indent=2))
            index.append({**record, "path": name})
        (tmp / "pareto.json").write_text(
            json.dumps({"study": study_name, "target": target_obj.name, "trials": index,
                        "same_as_exported": same, "reused": reused,
                        "asked_trials": None if trials is None else [t.number for t in front]}, indent=2)  # fmt: skip
        )
        shutil.rmtree(tmp / REBUILT_DIR, ignore_errors=True)
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)

    paths = [out_dir / f"trial-{t.number:04d}" for t in front]
    own_store = store is None
    store = store or Store(storage)
    try:
        for t, p in zip(front, paths):
            store.record_bundle(
                study_name=study_name, trial_number=t.number, target=target_obj.name, kind=kinds[t.number], path=p,
                run_id=run_id,
            )
    except StoreError as e:  # the folders are complete and checked: say so, and what is missing
        raise StoreError(
            f"exported {len(paths)} trial(s) to {out_dir}, complete and usable, but {e}; their database "
            "records are missing (export again once the database is writable to record them)"
        ) from e
    finally:
        if own_store:
            store.close()
    return paths


def _student_of(t: FrozenTrial, artifacts: Path, study_name: str) -> Path:
    """A trial's student folder; for a trial that reused an earlier trial's result (``repeats``)
    and has none of its own, the earlier trial's."""
    own = student_dir(artifacts, study_name, t.number)
    twin = t.user_attrs.get("repeats")
    if not own.is_dir() and isinstance(twin, int):
        return student_dir(artifacts, study_name, twin)
    return own


REBUILT_DIR = ".rebuilt-students"  # in an export's temporary folder: students rebuilt from the voice files


def trains_nothing(t: FrozenTrial) -> bool:
    """Whether a trial's plan fine-tunes no group (the pipeline's rule: no group changed beyond
    a 16-bit cast), so that its student is exactly its teacher compressed by the plan (the
    teacher baselines)."""
    from autocompress.compress.plan import CompressionPlan
    from autocompress.search.pipeline import needs_finetune

    plan = t.user_attrs.get("plan")
    if not isinstance(plan, dict):
        return False
    try:
        return not needs_finetune(CompressionPlan.from_dict(plan))
    except (AutocompressError, ValueError, KeyError, TypeError):
        return False


class _StudyVoice:
    """The teacher's GPT and SoVITS files a study recorded, and whether they are still those it was searched with."""

    def __init__(self, ident: Mapping[str, Any]) -> None:
        voice = ident.get("voice") if isinstance(ident, Mapping) else None
        voice = voice if isinstance(voice, Mapping) else {}
        self.gpt = Path(str(voice.get("gpt") or ""))
        self.sovits = Path(str(voice.get("sovits") or ""))
        self.hashes = str(ident.get("voice_sha256") or "").split() if isinstance(ident, Mapping) else []
        self._problem: str | None = None

    def problem(self) -> str:
        """"" when both files are there with the recorded content; else what is wrong, naming the file."""
        if self._problem is None:
            self._problem = self._check()
        return self._problem

    def _check(self) -> str:
        if len(self.hashes) != 2 or not str(self.gpt) or not str(self.sovits):
            return "the study did not record its voice files' hashes (a study from an older autocompress)"
        for kind, path, recorded in (("GPT", self.gpt, self.hashes[0]), ("SoVITS", self.sovits, self.hashes[1])):
            if not path.is_file():
                return f"its {kind} file {path} is missing; put it back where the search read it"
            try:
                digest = sha256_file(path)
            except OSError as e:
                return f"its {kind} file {path} cannot be read ({e.strerror or e}); make it readable"
            if digest != recorded:
                return f"its {kind} file {path} has changed since the search (another SHA-256); put the original back"
        return ""


def _asked(
    all_trials: Sequence[FrozenTrial], numbers: list[int], artifacts: Path, study_name: str, voice: _StudyVoice
) -> list[FrozenTrial]:
    """The trials ``numbers`` names, in that order. A trial whose student is gone is exported
    when its plan trains nothing and the study's voice files are unchanged (its student is then
    rebuilt from them).

    Raises:
        ConfigError: one does not exist, did not complete, or its student is gone and cannot be
            rebuilt; the message lists the trials that can be exported.
    """
    by_number = {t.number: t for t in all_trials}
    problems = []
    for n in numbers:
        t = by_number.get(n)
        if t is None:
            problems.append(f"trial {n} is not in study {study_name!r}")
        elif t.state != TrialState.COMPLETE or t.values is None:
            why = t.user_attrs.get("failure_reason")
            problems.append(f"trial {n} did not complete ({t.state.name}{f': {why}' if why else ''})")
        elif _student_of(t, artifacts, study_name).is_dir():
            continue
        elif trains_nothing(t) and voice.problem():
            problems.append(
                f"trial {n}'s student is gone from {students_dir(artifacts, study_name)} and cannot be rebuilt "
                f"from the study's voice: {voice.problem()}"
            )
        elif not trains_nothing(t):
            problems.append(
                f"trial {n}'s student is gone from {students_dir(artifacts, study_name)} (the search keeps only its "
                "Pareto trials' students; or --artifacts names another folder)"
            )
    if problems:
        have = {t.number for t in exportable(all_trials, artifacts, study_name)}
        can = [t.number for t in completed(all_trials)
               if t.number in have or (trains_nothing(t) and not voice.problem())]
        listed = ", ".join(map(str, can)) if can else f"none (no student left in {students_dir(artifacts, study_name)})"
        raise ConfigError(f"{'; '.join(problems)}; trials that can be exported: {listed}")
    return [by_number[n] for n in numbers]


def _remove_orphans(out_dir: Path) -> None:
    """Remove the temporary folders of exports to ``out_dir`` whose process has died; when
    ``out_dir`` is missing because such an export died between moving it aside and putting its
    new folder in place, put the folder it moved aside back first."""
    dead = []
    for path in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        kind, _, pid = path.name.rpartition("-")
        if kind.endswith((".tmp", ".old")) and pid.isdigit() and not pid_alive(int(pid)):
            dead.append((kind, path))
    if not out_dir.exists():
        moved_aside = sorted((p for kind, p in dead if kind.endswith(".old")), key=lambda p: p.stat().st_mtime)
        if moved_aside:
            os.replace(moved_aside[-1], out_dir)  # the last export, whole: it was only renamed
            dead = [(kind, p) for kind, p in dead if p != moved_aside[-1]]
    for _, path in dead:
        shutil.rmtree(path, ignore_errors=True)


def _distinct(front: list[FrozenTrial]) -> tuple[list[FrozenTrial], dict[str, int]]:
    """The front without trials equal to an earlier one (same plan, same objectives), and
    ``{later number: earlier number}`` for those left out. A baseline whose precision the
    target cannot run falls back to another baseline's plan and scores the same."""
    def plan(t: FrozenTrial) -> str:  # what the plan does, without a baseline's name before it
        summary, baseline = str(t.user_attrs.get("plan_summary")), t.user_attrs.get("baseline")
        return summary.removeprefix(f"{baseline}: ") if baseline else summary

    kept: list[FrozenTrial] = []
    same: dict[str, int] = {}
    for t in front:
        twin = next((k for k in kept if k.values == t.values and plan(k) == plan(t)), None)
        if twin is None:
            kept.append(t)
        else:
            same[str(t.number)] = twin.number
    return kept, same


def _objective_labels(metrics: list[dict[str, Any]]) -> dict[str, str]:
    """Whether each objective was measured (and where) or projected (and for which target)."""
    by_name = {m.get("name"): m for m in metrics if isinstance(m, dict)}
    labels = {}
    for objective, metric in OBJECTIVE_METRICS.items():
        m = by_name.get(metric)
        if m is not None:
            labels[objective] = f"{m.get('kind')} {'on' if m.get('kind') == 'measured' else 'for'} {m.get('device')}"
    return labels


def _trial_record(t: FrozenTrial, kind: str) -> dict[str, Any]:
    return {
        "trial": t.number,
        "kind": kind,
        "baseline": t.user_attrs.get("baseline"),
        "plan_summary": t.user_attrs.get("plan_summary"),
        "objectives": dict(zip(("quality", "latency_ms", "memory_mb"), t.values or ())),
        "objective_labels": _objective_labels(t.user_attrs.get("metrics", [])),
        "constraints": dict(t.constraints),
        "feasible": is_feasible(t),
        "infeasible_because": infeasible_reason(t),
        "metrics": t.user_attrs.get("metrics", []),
    }


def _export_key(t: FrozenTrial, src: Path, target: Target, export_format: str, cache: Path) -> str:
    """What a trial's export folder depends on: the trial, its student's files, the target's
    definition, the export format, the teacher cache (the bundle's check sentences) and the
    autocompress version and exporter revision that wrote it."""
    from autocompress import __version__
    from autocompress.export.bundle import EXPORT_REVISION

    parts = {
        "version": __version__, "exporter": EXPORT_REVISION, "format": export_format, "trial": t.number,
        "values": t.values, "plan": t.user_attrs.get("plan"), "student": hash_files(src),
        "target": {f.name: _plain(getattr(target, f.name)) for f in fields(target)},
        "cache": sha256_file(cache) if cache.is_file() else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _reuse(earlier: Path, key: str, src: Path, dest: Path) -> str | None:
    """Link the earlier export folder of a trial into ``dest`` when it was made from the same
    inputs (``key``), exported without a fallback, and its files are intact; return its kind."""
    try:
        record = json.loads((earlier / "trial.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("export_key") != key or record.get("export_note"):
        return None
    kind = record.get("kind")
    try:
        if kind == "onnx":
            read_manifest(earlier, verify=True)
        elif kind != "checkpoint":
            return None
        elif {k: v for k, v in hash_files(earlier).items() if k != "trial.json"} != hash_files(src):
            return None  # a checkpoint folder is a copy of the student: it must still be one
    except ExportError:
        return None
    try:
        shutil.copytree(earlier, dest, copy_function=_link_or_copy)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)
        return None
    return kind


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__


def default_exporter(cache_path: Path) -> TrialExporter:
    """ONNX bundles when the export package offers them, else checkpoint folders."""
    try:
        from autocompress.export import export_bundle  # noqa: F401
    except ImportError:
        return export_checkpoint
    from autocompress.search.bundles import onnx_exporter

    return onnx_exporter(cache_path)


def export_checkpoint(trial: FrozenTrial, src: Path, dest: Path, target: Any) -> str:
    """Copy the student's checkpoints and plan: a folder upstream GPT-SoVITS can load."""
    shutil.copytree(src, dest)
    return "checkpoint"


__all__ = [
    "EXPORT_FORMATS",
    "TrialExporter",
    "closest_trials",
    "completed",
    "default_exporter",
    "dominates",
    "export_checkpoint",
    "export_command",
    "export_pareto",
    "exportable",
    "feasible_front",
    "infeasible_reason",
    "is_feasible",
    "kept_front",
    "mark_pareto",
    "nothing_feasible_line",
    "unconstrained_front",
    "violation",
]
