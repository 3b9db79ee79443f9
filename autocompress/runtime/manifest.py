"""The bundle manifest: the contract between the exporter and the torch-free runner.

A bundle is a folder holding ONNX graphs, ``manifest.json``, the evaluation inputs
(``inputs.npz``), sample wavs and a README. The manifest says which graph implements which
module group at which precision (and what was requested, and every fallback on the way),
how the model is to be driven (sizes, sampling defaults), which figures were measured or
projected and on what device, the software versions, and the SHA-256 of every other file.

This module is plain data and JSON; it imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.exceptions import ExportError
from autocompress.runtime.files import sha256_file

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "autocompress-bundle"
BUNDLE_FORMAT_VERSION = 1
# Weight precisions a graph can be stored in, lowest first: the fallback order.
PRECISIONS: tuple[str, ...] = ("int2", "int4", "int8", "fp16", "fp32")
METRIC_KINDS: tuple[str, ...] = ("measured", "projected")


@dataclass(frozen=True)
class GraphEntry:
    """One ONNX file: its module group, the precision it was stored in, its exporter.

    Attributes:
        name: graph role, e.g. ``gpt_decode``.
        file: path relative to the bundle folder.
        group: module group it belongs to (``gpt``, ``enc_p``, ``flow``, ``dec``, ``ref_enc``).
        precision: the precision actually stored (one of :data:`PRECISIONS`).
        exporter: ``dynamo`` or ``legacy`` (torch.onnx exporter that produced it).
        inputs: graph input names, in order.
        outputs: graph output names, in order.
    """

    name: str
    file: str
    group: str
    precision: str
    exporter: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphEntry:
        """Read an entry; fields this version does not know (a newer exporter's) are ignored."""
        known = _known_fields(cls, data)
        return cls(**{**known, "inputs": tuple(data["inputs"]), "outputs": tuple(data["outputs"])})


@dataclass(frozen=True)
class ModuleEntry:
    """The precision story of one module group.

    Attributes:
        group: module group name.
        requested: precision the trial's plan asked for.
        used: precision shipped after any fallback.
        fallbacks: one record per rejected attempt: ``{"precision", "reason"}``.
        notes: other decisions (e.g. a precision the target cannot run, substituted).
    """

    group: str
    requested: str
    used: str
    fallbacks: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleEntry:
        return cls(
            group=data["group"],
            requested=data["requested"],
            used=data["used"],
            fallbacks=tuple(dict(f) for f in data.get("fallbacks", ())),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class MetricEntry:
    """One figure about the bundle, labelled ``measured`` or ``projected`` with its device.

    ``value`` is None when the figure could not be obtained (``note`` says why) or is an
    unbounded SNR of an exact match.
    """

    name: str
    value: float | None
    unit: str
    kind: str
    device: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricEntry:
        """Read an entry; fields this version does not know (a newer exporter's) are ignored."""
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class Manifest:
    """Everything the runner and a reader need to know about a bundle (``manifest.json``).

    Attributes:
        target: the hardware target the bundle was built for (name plus its data).
        plan: the compression plan of the trial, as JSON.
        model: sizes and constants the runner needs (sampling rate, EOS, cache layout...).
        graphs: graph role -> :class:`GraphEntry`.
        modules: module group -> :class:`ModuleEntry`.
        metrics: figures, each measured or projected.
        checks: every parity attempt, kept or rejected, in order.
        sampling: default sampler settings of the GPT loop.
        samples: sample wavs: ``{"file", "sample", "seconds"}``.
        versions: package versions that built the bundle.
        files: relative path -> SHA-256 of every file except the manifest.
        upstream: upstream-format files written, or why none were.
        created_utc: ISO-8601 creation time.
    """

    target: dict[str, Any]
    plan: dict[str, Any]
    model: dict[str, Any]
    graphs: dict[str, GraphEntry]
    modules: dict[str, ModuleEntry]
    metrics: tuple[MetricEntry, ...] = ()
    checks: tuple[dict[str, Any], ...] = ()
    sampling: dict[str, Any] = field(default_factory=dict)
    samples: tuple[dict[str, Any], ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    upstream: dict[str, Any] = field(default_factory=dict)
    created_utc: str = ""
    format: str = BUNDLE_FORMAT
    format_version: int = BUNDLE_FORMAT_VERSION

    def __post_init__(self) -> None:
        problems = []
        if self.format != BUNDLE_FORMAT:
            problems.append(f"format must be {BUNDLE_FORMAT!r}, got {self.format!r}")
        if self.format_version != BUNDLE_FORMAT_VERSION:
            newer = isinstance(self.format_version, int) and self.format_version > BUNDLE_FORMAT_VERSION
            why = "; a newer autocompress wrote it: upgrade autocompress to run it" if newer else ""
            problems.append(f"format_version must be {BUNDLE_FORMAT_VERSION}, got {self.format_version}{why}")
        for g in self.graphs.values():
            if g.precision not in PRECISIONS:
                problems.append(f"graph {g.name}: precision {g.precision!r} not in {PRECISIONS}")
            if g.group not in self.modules:
                problems.append(f"graph {g.name}: group {g.group!r} has no module entry")
        for m in self.modules.values():
            for p in (m.requested, m.used):
                if p not in PRECISIONS:
                    problems.append(f"module {m.group}: precision {p!r} not in {PRECISIONS}")
        for metric in self.metrics:
            if metric.kind not in METRIC_KINDS:
                problems.append(f"metric {metric.name}: kind must be one of {METRIC_KINDS}, got {metric.kind!r}")
            if not metric.device:
                problems.append(f"metric {metric.name}: device is empty")
        if problems:
            raise ExportError("invalid manifest: " + "; ".join(problems))

    def metric(self, name: str, kind: str | None = None) -> MetricEntry:
        """Return the metric called ``name`` (and of ``kind``, ``"measured"`` or ``"projected"``, if given)."""
        for m in self.metrics:
            if m.name == name and kind in (None, m.kind):
                return m
        raise KeyError(f"no {kind + ' ' if kind else ''}metric {name!r}; have {[m.name for m in self.metrics]}")

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return _plain(
            {
                "format": self.format,
                "format_version": self.format_version,
                "created_utc": self.created_utc,
                "target": self.target,
                "plan": self.plan,
                "model": self.model,
                "graphs": {k: g.to_dict() for k, g in self.graphs.items()},
                "modules": {k: m.to_dict() for k, m in self.modules.items()},
                "metrics": [m.to_dict() for m in self.metrics],
                "checks": list(self.checks),
                "sampling": self.sampling,
                "samples": list(self.samples),
                "versions": self.versions,
                "files": self.files,
                "upstream": self.upstream,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if isinstance(data, dict):  # a newer format may change any other field: say so first
            version = data.get("format_version")
            if data.get("format") == BUNDLE_FORMAT and isinstance(version, int) and version > BUNDLE_FORMAT_VERSION:
                raise ExportError(
                    f"bundle format_version {version} is newer than this autocompress reads "
                    f"({BUNDLE_FORMAT_VERSION}); upgrade autocompress to run it"
                )
        try:
            return cls(
                format=data["format"],
                format_version=int(data["format_version"]),
                created_utc=data.get("created_utc", ""),
                target=dict(data["target"]),
                plan=dict(data["plan"]),
                model=dict(data["model"]),
                graphs={k: GraphEntry.from_dict(g) for k, g in data["graphs"].items()},
                modules={k: ModuleEntry.from_dict(m) for k, m in data["modules"].items()},
                metrics=tuple(MetricEntry.from_dict(m) for m in data.get("metrics", ())),
                checks=tuple(data.get("checks", ())),
                sampling=dict(data.get("sampling", {})),
                samples=tuple(data.get("samples", ())),
                versions=dict(data.get("versions", {})),
                files=dict(data.get("files", {})),
                upstream=dict(data.get("upstream", {})),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as e:  # AttributeError: a list for a mapping
            raise ExportError(f"manifest is missing or has a bad field: {e!r}; was it written by autocompress?") from e


def read_manifest(bundle_dir: str | Path, verify: bool = True) -> Manifest:
    """Load ``manifest.json`` from a bundle folder.

    Args:
        bundle_dir: the bundle folder.
        verify: also check that every listed file exists with its recorded SHA-256 and that
            every graph file is listed.

    Raises:
        ExportError: no manifest, unreadable JSON, bad fields, or a file that fails its hash.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not path.is_file():
        raise ExportError(f"no {MANIFEST_NAME} in {bundle_dir}; expected a bundle folder written by `export`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bytes that are not UTF-8
        raise ExportError(f"cannot read {path}: {e}") from e
    manifest = Manifest.from_dict(data)
    if verify:
        verify_files(bundle_dir, manifest)
    return manifest


def verify_files(bundle_dir: str | Path, manifest: Manifest) -> None:
    """Check every file hash recorded in the manifest; raise :class:`ExportError` on a mismatch."""
    bundle_dir = Path(bundle_dir)
    problems = []
    for g in manifest.graphs.values():
        if g.file not in manifest.files:
            problems.append(f"graph file {g.file} has no recorded hash")
    for rel, digest in sorted(manifest.files.items()):
        f = bundle_dir / rel
        if not f.is_file():
            problems.append(f"{rel} is missing")
        elif sha256_file(f) != digest:
            problems.append(f"{rel} has sha256 {sha256_file(f)[:12]}..., manifest says {digest[:12]}...")
    if problems:
        raise ExportError(
            f"bundle {bundle_dir} fails its file check: " + "; ".join(problems)
            + "; restore the bundle's files as exported, or export it again"
        )


def hash_files(bundle_dir: str | Path) -> dict[str, str]:
    """SHA-256 of every file under ``bundle_dir`` except the manifest, by relative path."""
    bundle_dir = Path(bundle_dir)
    return {
        p.relative_to(bundle_dir).as_posix(): sha256_file(p)
        for p in sorted(bundle_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The items of ``data`` that name fields of dataclass ``cls``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _plain(value: Any) -> Any:
    """Turn tuples into lists recursively so the structure is plain JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "GraphEntry",
    "MANIFEST_NAME",
    "METRIC_KINDS",
    "Manifest",
    "MetricEntry",
    "ModuleEntry",
    "PRECISIONS",
    "hash_files",
    "read_manifest",
    "verify_files",
]
