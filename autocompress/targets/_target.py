"""Hardware targets: the ``Target`` value type and the loader of the TOML files beside it.

Each ``<name>.toml`` in this package describes one device: memory, bandwidth, dense peak
throughput per precision, the precisions a shipped model can run in per op kind, the runtimes,
the budgets a compressed voice must meet, and the constants the latency projection uses. The
numbers live in the files (with their sources as comments), never in the code.

A target marked ``measured = true`` (``cpu``: this machine) carries no hardware figures in its
file: scores for it are measured by running the model, and :func:`probe_host` fills memory,
bandwidth and fp32 throughput from this machine when a caller wants them.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from autocompress.exceptions import ConfigError

# Precision names, from widest to narrowest; bits per element of each.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")
PRECISION_BITS: Mapping[str, int] = MappingProxyType(
    {"fp32": 32, "fp16": 16, "bf16": 16, "fp8": 8, "int8": 8, "int4": 4}
)
# Op kinds a target states deployable precisions for.
OP_KINDS: tuple[str, ...] = ("matmul", "conv")
RUNTIMES: tuple[str, ...] = ("onnxruntime-tensorrt", "onnxruntime-cuda", "onnxruntime-cpu")
TARGET_KINDS: tuple[str, ...] = ("gpu", "cpu")

_GIB = 1024**3
_MIB = 1024**2


@dataclass(frozen=True)
class Target:
    """One hardware target, as read from ``autocompress/targets/<name>.toml``.

    Hardware figures (``memory_bytes``, ``bandwidth_gbps``, ``peak_tflops``) are None for a
    measured target until :func:`probe_host` fills them.

    Attributes:
        name: file stem, e.g. ``"rtx3060"``.
        description: one line for tables.
        kind: ``"gpu"`` or ``"cpu"``.
        measured: True when scores for this target are measured here, not projected.
        memory_bytes: device memory (shared memory on SoCs).
        bandwidth_gbps: peak memory bandwidth, GB/s (10^9 bytes per second).
        peak_tflops: dense peak per precision, TFLOPS (or TOPS for integers).
        deployable: precisions a shipped model can run in, per op kind (``matmul``, ``conv``).
        runtimes: runtimes that execute bundles on it, preferred first.
        default_precision: activation/compute precision when a plan leaves it open.
        memory_budget_bytes: memory the voice may use.
        rtf_budget: end-to-end real-time factor the voice must reach.
        max_seq_len: GPT context length the memory projection reserves KV cache for.
        launch_overhead_us: fixed cost per kernel launch in projections.
        efficiency: fraction of peak compute and bandwidth reached in practice (0, 1].
        context_bytes: runtime overhead (CUDA context and library handles, or session overhead).
    """

    name: str
    description: str
    kind: str
    measured: bool
    memory_bytes: int | None
    bandwidth_gbps: float | None
    peak_tflops: Mapping[str, float]
    deployable: Mapping[str, tuple[str, ...]]
    runtimes: tuple[str, ...]
    default_precision: str
    memory_budget_bytes: int
    rtf_budget: float
    max_seq_len: int
    launch_overhead_us: float
    efficiency: float
    context_bytes: int
    probed: bool = field(default=False)

    def __post_init__(self) -> None:
        # Freeze the mappings so a shared Target cannot be changed by a caller.
        object.__setattr__(self, "peak_tflops", MappingProxyType(dict(self.peak_tflops)))
        object.__setattr__(
            self, "deployable", MappingProxyType({k: tuple(v) for k, v in self.deployable.items()})
        )
        object.__setattr__(self, "runtimes", tuple(self.runtimes))
        problems = _problems(self)
        if problems:
            raise ConfigError(f"invalid target {self.name!r}: " + "; ".join(problems))

    def can_deploy(self, precision: str, op_kind: str) -> bool:
        """Whether ``op_kind`` (``matmul`` or ``conv``) can ship in ``precision`` here."""
        return precision in self.deployable.get(op_kind, ())

    def peak_flops(self, precision: str) -> float:
        """Dense peak in operations per second for ``precision``, 0 when the target has none."""
        return float(self.peak_tflops.get(precision, 0.0)) * 1e12

    @property
    def bandwidth_bytes_per_s(self) -> float | None:
        return None if self.bandwidth_gbps is None else self.bandwidth_gbps * 1e9

    @property
    def symmetric_int8(self) -> bool:
        """Whether a bundle's int8 activations are symmetric s8 (TensorRT runs int8 only from that
        form) rather than asymmetric u8 (onnxruntime's fast x86 path), chosen for a target that
        runs onnxruntime's CPU provider only."""
        return not all(r == "onnxruntime-cpu" for r in self.runtimes)

    @property
    def has_figures(self) -> bool:
        """True when bandwidth and fp32 throughput are known (always, unless measured and unprobed)."""
        return self.bandwidth_gbps is not None and "fp32" in self.peak_tflops

    def replace(self, **changes: Any) -> Target:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["peak_tflops"] = dict(self.peak_tflops)
        data["deployable"] = {k: list(v) for k, v in self.deployable.items()}
        data["runtimes"] = list(self.runtimes)
        return data

    @property
    def sha256(self) -> str:
        """Hash of the figures (not the description): what a study's projections depend on."""
        data = self.to_dict()
        data.pop("description")
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"Target.from_dict: unknown fields {unknown}; expected a subset of {sorted(names)}"
            )
        return cls(**dict(data))


def _problems(t: Target) -> list[str]:
    problems = []
    if t.kind not in TARGET_KINDS:
        problems.append(f"kind must be one of {TARGET_KINDS}, got {t.kind!r}")
    if not t.measured or t.probed:
        if t.memory_bytes is None or t.memory_bytes <= 0:
            problems.append("memory_gb must be > 0")
        if t.bandwidth_gbps is None or t.bandwidth_gbps <= 0:
            problems.append("bandwidth_gbps must be > 0")
        if "fp32" not in t.peak_tflops:
            problems.append("peak_tflops needs an fp32 entry")
    for p, v in t.peak_tflops.items():
        if p not in PRECISIONS:
            problems.append(f"peak_tflops: unknown precision {p!r} (known: {list(PRECISIONS)})")
        elif not v > 0:
            problems.append(f"peak_tflops.{p} must be > 0, got {v}")
    for kind, precs in t.deployable.items():
        if kind not in OP_KINDS:
            problems.append(f"deployable: unknown op kind {kind!r} (known: {list(OP_KINDS)})")
        for p in precs:
            if p not in PRECISIONS:
                problems.append(f"deployable.{kind}: unknown precision {p!r}")
        if "fp32" not in precs:
            problems.append(f"deployable.{kind} must include fp32 (the fallback precision)")
    missing = [k for k in OP_KINDS if k not in t.deployable]
    if missing:
        problems.append(f"deployable is missing op kinds {missing}")
    for r in t.runtimes:
        if r not in RUNTIMES:
            problems.append(f"unknown runtime {r!r} (known: {list(RUNTIMES)})")
    if not t.runtimes:
        problems.append("runtimes is empty")
    if t.default_precision not in ("fp32", "fp16", "bf16"):
        problems.append(f"default_precision must be fp32, fp16 or bf16, got {t.default_precision!r}")
    elif t.default_precision not in t.deployable.get("matmul", ()):
        problems.append(f"default_precision {t.default_precision!r} is not deployable for matmul")
    if t.memory_budget_bytes <= 0:
        problems.append("budget.vram_gb must be > 0")
    elif t.memory_bytes is not None and not t.probed and t.memory_budget_bytes > t.memory_bytes:
        problems.append(
            f"budget.vram_gb ({t.memory_budget_bytes / _GIB:g}) is more than the device's memory_gb "
            f"({t.memory_bytes / _GIB:g}): set a budget the device can hold"
        )
    if not t.rtf_budget > 0:
        problems.append("budget.rtf must be > 0")
    if t.max_seq_len <= 0:
        problems.append("budget.max_seq_len must be > 0")
    if t.launch_overhead_us < 0:
        problems.append("projection.launch_overhead_us must be >= 0")
    if not 0 < t.efficiency <= 1:
        problems.append(f"projection.efficiency must be in (0, 1], got {t.efficiency}")
    if t.context_bytes < 0:
        problems.append("projection.context_mb must be >= 0")
    return problems


# --------------------------------------------------------------------------- loading

_TOP_KEYS = {
    "name", "description", "kind", "measured", "memory_gb", "bandwidth_gbps", "default_precision",
    "runtimes", "peak_tflops", "deployable", "budget", "projection",
}
_BUDGET_KEYS = {"vram_gb", "rtf", "max_seq_len"}
_PROJECTION_KEYS = {"launch_overhead_us", "efficiency", "context_mb"}


def list_targets() -> list[str]:
    """Names of every target file shipped in this package, sorted."""
    root = resources.files(__package__)
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def _name_key(name: str) -> str:
    """A target name as people write it, reduced for comparison: "GeForce RTX 3060" -> "rtx3060"."""
    key = re.sub(r"[^a-z0-9]", "", name.lower()).replace("raspberrypi", "rpi")
    for maker in ("nvidia", "geforce", "tesla"):
        key = key.removeprefix(maker)
    return key


def shipped_name(name: str) -> str:
    """The shipped target a name means, written any usual way ("RTX 3060", "rtx-3060", "jetson orin nano").

    Raises:
        ConfigError: no shipped target is meant; the message suggests the nearest names and lists all.
    """
    names = list_targets()
    if name in names:
        return name
    by_key = {_name_key(n): n for n in names}
    key = _name_key(name)
    if key in by_key:
        return by_key[key]
    near = [n for n in names if key and _name_key(n).endswith(key)]
    near += [by_key[k] for k in difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.75)]
    hint = f"did you mean {' or '.join(repr(n) for n in dict.fromkeys(near))}? " if near else ""
    raise ConfigError(
        f"unknown target {name!r}; {hint}expected one of: {', '.join(names)} (or a path to a target .toml)"
    )


def load_target(name: str | os.PathLike[str]) -> Target:
    """Load a shipped target by name (``"rtx3060"``), or a target file of your own by path.

    A name that ends in ``.toml`` is a path: a device this package does not ship can be
    described in a file of the same keys (copy a shipped one; its ``name`` must equal the
    file's stem). The same string then names the target everywhere (search, export).

    Raises:
        ConfigError: the name is unknown (the message lists the valid ones), the file is
            missing, or it is invalid.
    """
    spec = os.fspath(name)
    if spec.endswith(".toml"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"target file {spec} does not exist")
        try:
            label, text = path.stem, path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"target file {spec}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    else:
        label = shipped_name(spec)
        text = resources.files(__package__).joinpath(f"{label}.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"target file {label}.toml is not valid TOML: {e}") from e
    return target_from_toml(data, label)


def _type_problems(data: Mapping[str, Any], budget: Mapping[str, Any], proj: Mapping[str, Any]) -> list[str]:
    """Each value of the wrong type or outside its range, named by its key."""
    problems = []

    def number(key: str, value: Any, zero_ok: bool = False) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < 0 or (value == 0 and not zero_ok):
            problems.append(f"{key} must be a finite number {'of 0 or more' if zero_ok else 'above 0'}, got {value!r}")

    def text(key: str, value: Any) -> None:
        if not isinstance(value, str) or not value:
            problems.append(f"{key} must be a non-empty string, got {value!r}")

    def strings(key: str, value: Any) -> None:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            problems.append(f"{key} must be a non-empty list of strings, got {value!r}")

    for key in ("description", "kind", "default_precision"):
        if key in data:
            text(key, data[key])
    if not isinstance(data.get("measured", False), bool):
        problems.append(f"measured must be true or false, got {data['measured']!r}")
    for key in ("memory_gb", "bandwidth_gbps"):
        if data.get(key) is not None:
            number(key, data[key])
    strings("runtimes", data["runtimes"])
    for kind_key, table in (("peak_tflops", data.get("peak_tflops", {})), ("deployable", data["deployable"])):
        if not isinstance(table, dict):
            problems.append(f"[{kind_key}] must be a table, got {table!r}")
            continue
        for k, v in table.items():
            (number if kind_key == "peak_tflops" else strings)(f"{kind_key}.{k}", v)
    number("budget.vram_gb", budget["vram_gb"])
    number("budget.rtf", budget["rtf"])
    if not isinstance(budget["max_seq_len"], int) or isinstance(budget["max_seq_len"], bool) or budget["max_seq_len"] < 1:
        problems.append(f"budget.max_seq_len must be a whole number of 1 or more, got {budget['max_seq_len']!r}")
    number("projection.launch_overhead_us", proj["launch_overhead_us"], zero_ok=True)
    number("projection.efficiency", proj["efficiency"])
    number("projection.context_mb", proj["context_mb"], zero_ok=True)
    return problems


def target_from_toml(data: Mapping[str, Any], name: str) -> Target:
    """Build a :class:`Target` from the parsed TOML of one target file."""
    problems = []
    for section in ("budget", "projection"):
        if not isinstance(data.get(section, {}), dict):
            problems.append(f"[{section}] must be a table, got {data[section]!r}")
    if problems:
        raise ConfigError(f"target file {name}.toml: " + "; ".join(problems))
    for section, keys, got in (
        ("", _TOP_KEYS, data),
        ("budget", _BUDGET_KEYS, data.get("budget", {})),
        ("projection", _PROJECTION_KEYS, data.get("projection", {})),
    ):
        unknown = sorted(set(got) - keys)
        if unknown:
            problems.append(f"unknown keys {unknown} in [{section or 'top level'}]")
    if data.get("name", name) != name:
        problems.append(
            f"name {data.get('name')!r} differs from the file name {name!r}: "
            f"set name = {name!r} in the file, or rename the file to match"
        )
    budget = data.get("budget", {})
    proj = data.get("projection", {})
    required = [("budget", budget, k) for k in sorted(_BUDGET_KEYS)] + [
        ("projection", proj, k) for k in sorted(_PROJECTION_KEYS)
    ]
    missing = [f"{s}.{k}" for s, d, k in required if k not in d]
    missing += [k for k in ("kind", "default_precision", "runtimes", "deployable") if k not in data]
    if not data.get("measured", False):  # a datasheet target: projections need its figures
        missing += [k for k in ("memory_gb", "bandwidth_gbps") if data.get(k) is None]
        peaks = data.get("peak_tflops", {})
        if not isinstance(peaks, dict) or "fp32" not in peaks:
            missing.append("peak_tflops.fp32")
    if missing:
        problems.append(f"missing keys {missing}" + (
            " (a datasheet target needs its figures; only a target measured here, measured = true, may leave them out)"
            if any(k in ("memory_gb", "bandwidth_gbps", "peak_tflops.fp32") for k in missing) else ""))
    if not problems:
        problems += _type_problems(data, budget, proj)
    if problems:
        raise ConfigError(f"target file {name}.toml: " + "; ".join(problems))
    memory_gb = data.get("memory_gb")
    return Target(
        name=name,
        description=str(data.get("description", name)),
        kind=str(data["kind"]),
        measured=bool(data.get("measured", False)),
        memory_bytes=None if memory_gb is None else int(float(memory_gb) * _GIB),
        bandwidth_gbps=None if data.get("bandwidth_gbps") is None else float(data["bandwidth_gbps"]),
        peak_tflops={str(k): float(v) for k, v in data.get("peak_tflops", {}).items()},
        deployable={str(k): tuple(str(p) for p in v) for k, v in data["deployable"].items()},
        runtimes=tuple(str(r) for r in data["runtimes"]),
        default_precision=str(data["default_precision"]),
        memory_budget_bytes=int(float(budget["vram_gb"]) * _GIB),
        rtf_budget=float(budget["rtf"]),
        max_seq_len=int(budget["max_seq_len"]),
        launch_overhead_us=float(proj["launch_overhead_us"]),
        efficiency=float(proj["efficiency"]),
        context_bytes=int(float(proj["context_mb"]) * _MIB),
    )


# --------------------------------------------------------------------------- this machine


def probe_host(target: Target, size_mb: int = 256, repeats: int = 3) -> Target:
    """Return ``target`` with memory, bandwidth and fp32 throughput measured on this machine.

    Memory is the OS's physical memory; bandwidth is the best of ``repeats`` copies of a
    ``size_mb`` buffer (read + write bytes over time); fp32 throughput is the best of
    ``repeats`` 1024^3 matmuls with torch's current thread count. Takes about a second.
    A target that already has figures and is not measured is returned unchanged.

    Raises:
        ConfigError: ``target`` is a measured GPU target (this probes the CPU, not a GPU).
    """
    if not target.measured:
        return target
    if target.kind != "cpu":
        raise ConfigError(
            f"target {target.name!r} is a measured {target.kind}, but probe_host measures this machine's CPU: "
            "give the device's datasheet figures in its file (measured = false) to project it"
        )
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    n = size_mb * _MIB // 4
    src = torch.ones(n, dtype=torch.float32)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats + 1):  # the first copy faults the pages in
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    bandwidth = 2 * src.numel() * 4 / best / 1e9
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    fp32_tflops = 2 * 1024**3 / best / 1e12
    return target.replace(
        memory_bytes=int(memory),
        bandwidth_gbps=round(bandwidth, 2),
        peak_tflops={**target.peak_tflops, "fp32": round(fp32_tflops, 4)},
        probed=True,
    )
