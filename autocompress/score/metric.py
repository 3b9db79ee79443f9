"""The ``Metric`` value type: every number that leaves ``autocompress.score`` is one.

A metric says what it is (name, unit), what it is worth, and how it was obtained: ``measured``
on a device (this machine's CPU, a GPU here) or ``projected`` for a hardware target that was
not run. The label travels with the value into the store, the CLI tables, bundle manifests and
the dashboard, so a projection is never mistaken for a measurement.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from autocompress.exceptions import ConfigError

MEASURED = "measured"
PROJECTED = "projected"
METRIC_KINDS: tuple[str, ...] = (MEASURED, PROJECTED)


@dataclass(frozen=True)
class Metric:
    """One scored figure with its provenance.

    Attributes:
        name: stable identifier, e.g. ``"gpt_ms_per_token"``, ``"mcd_db"``.
        value: the number (NaN when it could not be obtained; ``note`` then says why).
        unit: ``"ms"``, ``"bytes"``, ``"dB"``, ``"MOS"``, ``"x"`` (a ratio), ``""``...
        kind: ``"measured"`` or ``"projected"``.
        device: for measured figures the device that ran (``host_device()``), for projected
            ones the target name (``"rtx3060"``).
        note: optional one-line remark (fallbacks, precisions substituted, ...).
    """

    name: str
    value: float
    unit: str
    kind: str
    device: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS:
            raise ConfigError(f"Metric {self.name!r}: kind must be one of {METRIC_KINDS}, got {self.kind!r}")
        if not self.name or not self.device:
            raise ConfigError(
                f"Metric needs a name and a device, got name={self.name!r} device={self.device!r}"
            )
        object.__setattr__(self, "value", float(self.value))

    @property
    def is_measured(self) -> bool:
        return self.kind == MEASURED

    @property
    def ok(self) -> bool:
        """False when the value is NaN (not obtained)."""
        return not math.isnan(self.value)

    @property
    def label(self) -> str:
        """``"measured on <device>"`` or ``"projected for <target>"``."""
        return f"measured on {self.device}" if self.is_measured else f"projected for {self.device}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not self.ok:
            data["value"] = None  # JSON has no NaN
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metric:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"Metric.from_dict: unknown fields {unknown}; expected {sorted(names)}")
        missing = sorted(names - set(data) - {"note"})
        if missing:
            raise ConfigError(f"Metric.from_dict: missing fields {missing}")
        value = data["value"]
        return cls(**{**data, "value": math.nan if value is None else float(value)})


def measured(name: str, value: float, unit: str, device: str | None = None, note: str = "") -> Metric:
    """A measured metric; ``device`` defaults to :func:`host_device`."""
    return Metric(name, value, unit, MEASURED, device or host_device(), note)


def projected(name: str, value: float, unit: str, target: str, note: str = "") -> Metric:
    """A metric projected for the hardware target named ``target``."""
    return Metric(name, value, unit, PROJECTED, target, note)


def format_value(value: float, unit: str) -> str:
    """A short human form: bytes in MiB/GiB, ms with 3 significant digits, others %.4g."""
    if math.isnan(value):
        return "n/a"
    if unit == "bytes":
        if abs(value) >= 2**30:
            return f"{value / 2**30:.2f} GiB"
        return f"{value / 2**20:.1f} MiB"
    text = f"{value:.4g}" if unit != "ms" else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def format_metric(metric: Metric, with_name: bool = False) -> str:
    """``"12.3 ms (measured on cpu: AMD EPYC, 2 threads)"`` / ``"0.41 ms (projected for rtx3060)"``."""
    text = f"{format_value(metric.value, metric.unit)} ({metric.label})"
    if metric.note:
        text += f" [{metric.note}]"
    return f"{metric.name}: {text}" if with_name else text


def host_device(device: Any = None) -> str:
    """Describe the device that measures: ``"cpu: <model>, <n> threads"`` or ``"cuda:0: <GPU name>"``."""
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    if kind == "cuda":
        import torch

        dev = torch.device(device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index}: {torch.cuda.get_device_name(index)}"
    # torch's intra-op thread count when torch is in use; importing it just to ask costs seconds.
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else os.cpu_count()
    return f"cpu: {_cpu_model()}, {threads} thread{'' if threads == 1 else 's'}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or f"{os.cpu_count()} cores"
