"""What a search report shows, read from an Optuna study and the exported bundles."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from autocompress.exceptions import ConfigError
from autocompress.store import display_url
from autocompress.schedule._front import direction_names
from autocompress.search.pareto import _distinct, completed, feasible_front, is_feasible
from autocompress.search.study import IDENTITY_ATTR, OBJECTIVE_METRICS

DEFAULT_NAMES = ("quality", "latency", "memory")


@dataclass(frozen=True)
class TrialPoint:
    """One finished trial as the report plots it."""

    number: int
    values: tuple[float, ...]
    feasible: bool
    pareto: bool
    baseline: str | None
    params: dict[str, float | str]
    plan: str = ""  # the plan's one-line summary
    terms: dict[str, float] = field(default_factory=dict)  # the quality's parts (QUALITY_TERMS)
    infeasible_because: str = ""  # the constraints an infeasible trial breaks, as the search recorded them
    notes: tuple[str, ...] = ()  # per objective (as values): what its figure is of or assumes, "" when nothing
    # a Pareto trial with the plan and figures of an earlier one: the export holds that one instead
    same_as: int | None = None


# What the quality is made of, and STOI beside it: the trial table shows these per trial.
QUALITY_TERMS = ("distillmos", "speaker_cos", "mcd_db", "stoi")


def _objective_notes(trial: FrozenTrial, names: tuple[str, ...]) -> tuple[str, ...]:
    """Each objective's note, from the trial's metric behind it ("" when it has none)."""
    notes = {m.get("name"): m.get("note") for m in _metric_list(trial.user_attrs.get("metrics", []))}
    out = []
    for name in names:
        note = notes.get(OBJECTIVE_METRICS.get(name, name))
        out.append(note.strip() if isinstance(note, str) else "")
    return tuple(out)


def _terms(trial: FrozenTrial) -> dict[str, float]:
    metrics = _metric_list(trial.user_attrs.get("metrics", []))  # older studies: keyed by name
    found = {m.get("name"): m.get("value") for m in metrics}
    return {k: float(found[k]) for k in QUALITY_TERMS if isinstance(found.get(k), (int, float))}


@dataclass(frozen=True)
class BundleRow:
    """One exported bundle: its folder, manifest figures (each labelled) and sample audio."""

    path: Path
    trial: int | None
    target: str
    metrics: list[dict]  # {"name", "value", "unit", "kind": measured|projected, "device", "note"}
    precisions: dict[str, str]
    samples: list[Path]
    kind: str = "onnx"  # or "checkpoint": the student's .ckpt/.pth, no ONNX graphs
    note: str = ""  # what the export says went wrong, e.g. an ONNX export that fell back to checkpoints
    infeasible: str = ""  # why the trial breaks the target's limits, for one exported by number ("export --trial")


@dataclass
class ReportData:
    study_name: str
    target: str | None
    objective_names: tuple[str, ...]
    objective_labels: tuple[str, ...]  # e.g. "latency, ms per audio s (projected for rtx3060)"
    points: list[TrialPoint]
    n_failed: int
    n_pruned: int = 0
    n_running: int = 0  # running or waiting: not finished yet
    scoring: int | None = None  # the scoring version the study was created with, when recorded
    bundles: list[BundleRow] = field(default_factory=list)
    teacher_samples: list[Path] = field(default_factory=list)
    sensitivity: dict[str, list[tuple[str, float, int]]] = field(default_factory=dict)


def _label(study: optuna.Study, name: str, i: int) -> str:
    units = study.user_attrs.get("objective_units", {})
    kinds = study.user_attrs.get("objective_kinds", {})
    unit = units.get(name) if isinstance(units, dict) else None
    kind = kinds.get(name) if isinstance(kinds, dict) else None
    text = name if unit is None else f"{name} ({unit})"
    return f"{text}, {kind or 'measured or projected: not recorded'}"  # a study autocompress did not label


def _study_names(storage: optuna.storages.BaseStorage, most: int = 10) -> str:
    """The studies ``storage`` holds, as the end of a message naming the one asked for."""
    names = sorted(s.study_name for s in storage.get_all_studies())
    if not names:
        return "it holds no studies yet; hint: check --storage"
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return f"its studies: {', '.join(repr(n) for n in names[:most])}{more}; hint: check --study"


def load_report_data(storage: str, study_name: str, target: str | None = None, export_dir: Path | None = None) -> ReportData:
    """Collect trials, the feasible Pareto front, sensitivities and bundles for one study."""
    from autocompress.search.study import open_storage
    from autocompress.targets import load_target

    rdb = open_storage(storage)  # StoreError: bad URL
    try:
        study = optuna.load_study(study_name=study_name, storage=rdb)
    except KeyError as e:
        raise ConfigError(f"no study named {study_name!r} in {display_url(storage)}; {_study_names(rdb)}") from e
    ident = study.user_attrs.get(IDENTITY_ATTR)
    ident = ident if isinstance(ident, dict) else {}
    searched = study.user_attrs.get("target") or ident.get("target")  # the first: written as a run starts
    if target is not None and target != searched:  # the study's own name needs no file: a custom target's has none
        target = load_target(target).name  # ConfigError for an unknown name or a bad target file
        if searched is not None and target != searched:
            raise ConfigError(
                f"study {study_name!r} was searched for target {searched!r}, not {target!r}; "
                "a report shows the study's own target (leave out --target)"
            )
    trials = study.get_trials(deepcopy=False)
    names = tuple(study.metric_names or DEFAULT_NAMES[: len(study.directions)])
    front_trials = feasible_front(trials, direction_names(study))
    front = {t.number for t in front_trials}
    same = {int(n): twin for n, twin in _distinct(front_trials)[1].items()}  # as the export leaves them out
    done = completed(trials)
    points = [
        TrialPoint(
            number=t.number,
            values=tuple(float(v) for v in t.values),
            feasible=is_feasible(t),
            pareto=t.number in front,
            baseline=t.user_attrs.get("baseline"),
            params=dict(t.params),
            plan=str(t.user_attrs.get("plan_summary", "")),
            terms=_terms(t),
            infeasible_because=str(t.user_attrs.get("infeasible_because") or ""),
            notes=_objective_notes(t, names),
            same_as=same.get(t.number),
        )
        for t in done
    ]
    target = target or searched
    data = ReportData(
        study_name=study_name,
        target=target,
        objective_names=names,
        objective_labels=tuple(_label(study, n, i) for i, n in enumerate(names)),
        points=points,
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_running=sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
        scoring=ident.get("scoring", 1) if ident else None,
    )
    data.sensitivity = sensitivity(done, quality_index=0)
    if export_dir is not None and export_dir.exists():
        attach_bundles(data, export_dir)
    return data


def attach_bundles(data: ReportData, export_dir: Path) -> ReportData:
    """Add the bundles (and teacher samples) of the study's export folder ``export_dir`` to ``data``.

    Raises:
        ConfigError: the folder holds another study's export.
    """
    _check_export_owner(export_dir, data.study_name, data.target)
    data.bundles = find_bundles(export_dir)
    teacher = export_dir / "teacher"
    if teacher.is_dir():
        data.teacher_samples = sorted(teacher.glob("*.wav"))
    return data


def sensitivity(trials: list[FrozenTrial], quality_index: int = 0) -> dict[str, list[tuple[str, float, int]]]:
    """Mean quality for each value of each searched parameter: how quality falls as a module's
    bits or prune ratio change. Returns {param: [(value, mean quality, n trials), ...]}."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in trials:
        if t.values is None:
            continue
        q = float(t.values[quality_index])
        if not math.isfinite(q):
            continue
        for name, value in t.params.items():
            table[name][_fmt_value(value)].append(q)
    out: dict[str, list[tuple[str, float, int]]] = {}
    for name in sorted(table):
        rows = [(v, sum(qs) / len(qs), len(qs)) for v, qs in table[name].items()]
        out[name] = sorted(rows, key=lambda r: _sort_key(r[0]))
    return out


def _fmt_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _current_export(export_dir: Path) -> Path:
    """The folder of the current export: where ``latest`` points, when scheduled runs keep older ones."""
    latest = export_dir / "latest"
    return latest.resolve() if latest.is_dir() else export_dir


def _check_export_owner(export_dir: Path, study_name: str, target: str | None) -> None:
    """Raise ``ConfigError`` when the export's pareto.json says it holds another study's or target's bundles."""
    index = _read_json(_current_export(export_dir) / "pareto.json") or {}
    study, exported_for = index.get("study"), index.get("target")
    if (study is not None and study != study_name) or (exported_for is not None and target and exported_for != target):
        raise ConfigError(
            f"{export_dir} holds the export of study {study!r} for {exported_for!r}, not of {study_name!r} for "
            f"{target!r}; hint: --exports names the study's own export folder"
        )


def find_bundles(export_dir: Path) -> list[BundleRow]:
    """Every exported trial of the current export in ``export_dir`` (an ONNX bundle with its
    manifest.json, or a checkpoint export with only its trial.json): under its ``latest`` link
    where scheduled runs keep older exports beside it, by folder."""
    root = _current_export(export_dir)
    folders = {f.parent for f in root.rglob("manifest.json")} | {f.parent for f in root.rglob("trial.json")}
    rows = []
    for folder in sorted(folders):
        row = _bundle_row(folder)
        if row is not None:
            rows.append(row)
    return rows


def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _metric_list(metrics: object) -> list[dict]:
    """Metrics as a list of dicts (older files keyed them by name)."""
    if isinstance(metrics, dict):
        metrics = [dict(name=k, **v) if isinstance(v, dict) else {"name": k, "value": v} for k, v in metrics.items()]
    return [m for m in metrics if isinstance(m, dict)] if isinstance(metrics, list) else []


def _bundle_row(folder: Path) -> BundleRow | None:
    """One exported trial's row, from its manifest.json or, for a checkpoint export, its trial.json."""
    has_manifest = (folder / "manifest.json").exists()
    manifest = _read_json(folder / "manifest.json") if has_manifest else None
    if has_manifest and manifest is None:
        return None  # a bundle whose manifest cannot be read
    record = _read_json(folder / "trial.json") or {}
    if manifest is None and "kind" not in record:
        return None  # some other trial.json, not an export's record
    source = manifest if manifest is not None else record
    modules = source.get("modules") or {}
    precisions = {g: str(v.get("used", "")) for g, v in modules.items() if isinstance(v, dict)}
    if manifest is not None:
        target = manifest.get("target", "")
        target = target.get("name", "") if isinstance(target, dict) else target
    else:  # a checkpoint export names its target once, in the folder's pareto.json
        target = (_read_json(folder.parent / "pareto.json") or {}).get("target", "")
    trial = source.get("trial")
    trial = record.get("trial") if trial is None else trial
    return BundleRow(
        path=folder,
        trial=trial if isinstance(trial, int) else None,
        target=str(target),
        metrics=_metric_list(source.get("metrics", [])),
        precisions=precisions,
        samples=sorted(folder.rglob("*.wav"))[:3],
        kind="onnx" if manifest is not None else str(record.get("kind", "checkpoint")),
        note=str(record.get("export_note") or ""),
        infeasible=str(record.get("infeasible_because") or "infeasible") if record.get("feasible") is False else "",
    )
