"""What to do to each module group: the compression plan, as plain data.

A :class:`CompressionPlan` maps module-group names (``gpt``, ``enc_p``, ``flow``, ``dec``,
``ref_enc`` for GPT-SoVITS) to a :class:`GroupPlan`, which holds three transform configs
applied in this order:

1. :class:`StudentConfig`: a narrower / shallower model of the same architecture,
   initialised from the teacher's most important channels and layers (for distillation);
2. :class:`PruneConfig`: structured pruning that physically removes channels, heads and
   layers, within the limits below;
3. :class:`QuantConfig`: weight precision (simulated by fake quantization while training)
   and activation precision.

Everything here is data: JSON round-trippable through :meth:`CompressionPlan.to_dict` /
:meth:`CompressionPlan.from_dict`, which write a ``kind`` and ``version`` per object and read
only the kinds in :data:`PLAN_KINDS`. Model-dependent checks (unit names, the 60 % module
total, the 16-channel floor) happen when a plan is applied.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass, field
from typing import Any, ClassVar

from autocompress.exceptions import ConfigError

# --- pruning limits (checked here for ratios, and against the model when applied) ---
MAX_LAYER_PRUNE = 0.40  # at most 40 % of one layer's channels / heads removed
MAX_MODULE_PRUNE = 0.60  # at most 60 % of a module group's prunable channels removed (depth included)
MIN_CHANNELS = 16  # a pruned layer keeps at least 16 channels (layers already narrower are left alone)

# --- precisions, as strings (plain data) ---
WEIGHT_PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int7", "int6", "int5", "int4", "int3", "int2")
ACTIVATION_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
OP_KINDS = ("linear", "conv", "conv_transpose")  # the layer kinds a weight precision applies to
IMPORTANCE_METHODS = ("l1", "activation", "taylor")


def precision_bits(precision: str) -> int:
    """Return the bit width of a precision string: ``"fp16"`` -> 16, ``"int4"`` -> 4.

    Raises:
        ConfigError: for a string that is not a known weight or activation precision.
    """
    if precision not in WEIGHT_PRECISIONS and precision not in ACTIVATION_PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {WEIGHT_PRECISIONS}")
    return int(precision[3:]) if precision.startswith("int") else int(precision[2:])


def weight_precision_for_bits(bits: int, float16: str = "fp16") -> str:
    """Return the weight precision string for a bit width (16 bits: ``float16`` picks fp16/bf16)."""
    if bits == 32:
        return "fp32"
    if bits == 16:
        if float16 not in ("fp16", "bf16"):
            raise ConfigError(f"16-bit weights are 'fp16' or 'bf16', got {float16!r}")
        return float16
    if 2 <= bits <= 8:
        return f"int{bits}"
    raise ConfigError(f"weight bits must be 32, 16 or 2..8, got {bits}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_float(obj: Any, name: str) -> None:
    """Store a numeric field of a frozen config as a float (``0`` and ``0.0`` are one plan)."""
    object.__setattr__(obj, name, float(getattr(obj, name)))


def _not_a_number(name: str, value: Any) -> str:
    return f"{name} must be a number, got {value!r}"


@dataclass(frozen=True)
class StudentConfig:
    """Shape of a distillation student relative to its teacher (1.0 = unchanged).

    Per group: ``gpt`` width = hidden size (heads kept, narrower heads), depth = layers;
    ``enc_p`` width = FFN width, depth = transformer layers; ``flow`` width = WN hidden,
    depth = coupling layers (the first ones are kept, dropped in pairs); ``dec`` width =
    ``upsample_initial_channel``, depth = resblocks per stage; ``ref_enc`` width = style
    width (no depth).
    """

    KIND: ClassVar[str] = "student"
    VERSION: ClassVar[int] = 1

    width_mult: float = 1.0
    depth_mult: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("width_mult", "depth_mult"):
            value = getattr(self, name)
            if not _is_number(value):
                problems.append(_not_a_number(name, value))
            elif not 0.0 < value <= 1.0:
                problems.append(f"{name} must be in (0, 1], got {value}")
        if problems:
            raise ConfigError("invalid StudentConfig: " + "; ".join(problems))
        _as_float(self, "width_mult")
        _as_float(self, "depth_mult")

    @property
    def is_identity(self) -> bool:
        return self.width_mult == 1.0 and self.depth_mult == 1.0


@dataclass(frozen=True)
class PruneConfig:
    """Structured pruning of one module group.

    Attributes:
        ratio: fraction of channels / heads removed from every prunable unit of the group
            (a unit is one layer's FFN, one layer's heads, one decoder stage...). Units it
            would take below 16 channels are pruned only down to 16.
        layers: per-unit ratios overriding ``ratio``, keyed by unit name (for example
            ``"layers.3.ffn"``, ``"ups.1"``; :func:`autocompress.compress.prunable_units`
            lists them), named as in the teacher, before a student's or pruning's depth (a
            ratio of a dropped layer is moot). An explicit ratio that breaks a limit is an error.
        depth_ratio: fraction of whole layers removed (``gpt`` layers, ``flow`` couplings;
            couplings go in pairs, rounding toward the teacher, since each carries a Flip).
        importance: how channels are ranked: ``"l1"`` weight magnitude (no data),
            ``"activation"`` mean activation magnitude, or ``"taylor"`` |w * dL/dw| (both on
            calibration batches).
    """

    KIND: ClassVar[str] = "prune"
    VERSION: ClassVar[int] = 1

    ratio: float = 0.0
    layers: dict[str, float] = field(default_factory=dict)
    depth_ratio: float = 0.0
    importance: str = "l1"

    def __post_init__(self) -> None:
        problems = []
        layers = self.layers if isinstance(self.layers, dict) else {}
        if not isinstance(self.layers, dict):
            problems.append(f"layers must map unit names to ratios, got {self.layers!r}")
        problems += [f"layers key {k!r} is not a unit name" for k in layers if not isinstance(k, str)]
        ratios = {"ratio": self.ratio, **{f"layers[{k!r}]": v for k, v in layers.items()}}
        for name, value in ratios.items():
            if not _is_number(value):
                problems.append(_not_a_number(name, value))
            elif not 0.0 <= value <= MAX_LAYER_PRUNE + 1e-9:
                problems.append(
                    f"{name} = {value:.2f} removes more than {MAX_LAYER_PRUNE:.0%} of a layer "
                    f"(allowed 0..{MAX_LAYER_PRUNE})"
                )
        if not _is_number(self.depth_ratio):
            problems.append(_not_a_number("depth_ratio", self.depth_ratio))
        elif not 0.0 <= self.depth_ratio <= MAX_MODULE_PRUNE + 1e-9:
            problems.append(
                f"depth_ratio = {self.depth_ratio:.2f} removes more than {MAX_MODULE_PRUNE:.0%} of the module"
            )
        if self.importance not in IMPORTANCE_METHODS:
            problems.append(f"importance must be one of {IMPORTANCE_METHODS}, got {self.importance!r}")
        if problems:
            raise ConfigError("invalid PruneConfig: " + "; ".join(problems))
        _as_float(self, "ratio")
        _as_float(self, "depth_ratio")
        object.__setattr__(self, "layers", {k: float(v) for k, v in self.layers.items()})

    @property
    def is_identity(self) -> bool:
        return self.ratio == 0.0 and self.depth_ratio == 0.0 and not any(self.layers.values())

    def ratio_of(self, unit: str) -> float:
        """The ratio for one unit: its own entry in ``layers``, else the module ``ratio``."""
        return self.layers.get(unit, self.ratio)


@dataclass(frozen=True)
class QuantConfig:
    """Weight and activation precision of one module group.

    Attributes:
        weights: precision of every weight in the group (``"fp32"``, ``"fp16"``, ``"bf16"``,
            ``"int8"`` ... ``"int2"``; below 8 bits for simulation).
        activations: ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"`` (per-tensor dynamic).
        op_weights: per op kind (``"linear"``, ``"conv"``, ``"conv_transpose"``) overrides
            of ``weights``.
    """

    KIND: ClassVar[str] = "quant"
    VERSION: ClassVar[int] = 1

    weights: str = "fp32"
    activations: str = "fp32"
    op_weights: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.weights not in WEIGHT_PRECISIONS:
            problems.append(f"weights must be one of {WEIGHT_PRECISIONS}, got {self.weights!r}")
        if self.activations not in ACTIVATION_PRECISIONS:
            problems.append(f"activations must be one of {ACTIVATION_PRECISIONS}, got {self.activations!r}")
        if not isinstance(self.op_weights, dict):
            problems.append(f"op_weights must map op kinds {OP_KINDS} to precisions, got {self.op_weights!r}")
        for kind, precision in (self.op_weights if isinstance(self.op_weights, dict) else {}).items():
            if kind not in OP_KINDS:
                problems.append(f"op_weights key {kind!r} is not an op kind {OP_KINDS}")
            if precision not in WEIGHT_PRECISIONS:
                problems.append(f"op_weights[{kind!r}] must be one of {WEIGHT_PRECISIONS}, got {precision!r}")
        if problems:
            raise ConfigError("invalid QuantConfig: " + "; ".join(problems))

    def weight_precision(self, op_kind: str) -> str:
        """The weight precision of one op kind (its override, else ``weights``)."""
        return self.op_weights.get(op_kind, self.weights)

    @property
    def precisions(self) -> set[str]:
        """Every weight precision this config uses."""
        return {self.weights, *self.op_weights.values()}

    @property
    def is_identity(self) -> bool:
        return self.precisions == {"fp32"} and self.activations == "fp32"


@dataclass(frozen=True)
class GroupPlan:
    """The transforms of one module group: student, then pruning, then precision."""

    KIND: ClassVar[str] = "group_plan"
    VERSION: ClassVar[int] = 1

    student: StudentConfig = field(default_factory=StudentConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)

    def __post_init__(self) -> None:
        expected = {"student": StudentConfig, "prune": PruneConfig, "quant": QuantConfig}
        problems = [
            f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}"
            for name, cls in expected.items()
            if not isinstance(getattr(self, name), cls)
        ]
        if problems:
            raise ConfigError("invalid GroupPlan: " + "; ".join(problems))

    @property
    def is_identity(self) -> bool:
        return self.student.is_identity and self.prune.is_identity and self.quant.is_identity


@dataclass(frozen=True)
class CompressionPlan:
    """Per module group, how to compress a voice. Groups not listed are left unchanged.

    Build one directly, from a preset (:mod:`autocompress.compress.presets`) or from JSON;
    apply it with :func:`autocompress.compress.compress`.
    """

    KIND: ClassVar[str] = "compression_plan"
    VERSION: ClassVar[int] = 1

    groups: dict[str, GroupPlan] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.groups, dict):
            raise ConfigError(
                f"CompressionPlan.groups must map group names to GroupPlan, got {type(self.groups).__name__}"
            )
        if not isinstance(self.name, str):
            raise ConfigError(f"CompressionPlan.name must be a string, got {self.name!r}")
        bad = [k for k, v in self.groups.items() if not isinstance(k, str) or not isinstance(v, GroupPlan)]
        if bad:
            raise ConfigError(f"CompressionPlan.groups must map group names to GroupPlan; bad entries {bad}")

    def group(self, name: str) -> GroupPlan:
        """The plan of one group (an identity plan when the group is not listed)."""
        return self.groups.get(name, GroupPlan())

    def replace_group(self, name: str, **changes: Any) -> CompressionPlan:
        """A copy with one group's ``student`` / ``prune`` / ``quant`` replaced."""
        groups = dict(self.groups)
        groups[name] = dataclasses.replace(self.group(name), **changes)
        return dataclasses.replace(self, groups=groups)

    # ----- deployment (see autocompress.compress.deploy)

    def deployable_on(self, target: Any) -> bool:
        """True when a ``Target`` (or target name) can ship every precision of this plan."""
        from autocompress.compress.deploy import deployable_on

        return deployable_on(self, target)

    def with_fallback(self, target: Any) -> CompressionPlan:
        """A copy with each precision the target cannot ship replaced by the nearest one it can."""
        from autocompress.compress.deploy import with_deployable_precisions

        return with_deployable_precisions(self, target)

    # ----- serialisation

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"kind", "version", "data"}`` at every level."""
        return _encode(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressionPlan:
        """Read a dict written by :meth:`to_dict`; only the kinds in :data:`PLAN_KINDS` load.

        Raises:
            ConfigError: unknown kind, newer version, unknown field or bad value.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a compression plan is a JSON object, got {type(data).__name__}")
        plan = _decode(data)
        if not isinstance(plan, cls):
            raise ConfigError(f"expected kind {cls.KIND!r} at the top level, got {data.get('kind')!r}")
        return plan

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def fingerprint(self) -> str:
        """A stable short id of what the plan does (the name and unchanged groups excluded): 16 hex digits."""
        changed = {g: gp for g, gp in self.groups.items() if not gp.is_identity}
        data = CompressionPlan(changed).to_dict()
        data["data"] = {k: v for k, v in data["data"].items() if k != "name"}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str) -> CompressionPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"compression plan is not valid JSON: {e}") from e
        return cls.from_dict(data)


# The allow-list of serialisable kinds: from_dict never builds anything else.
PLAN_KINDS: dict[str, type] = {
    cls.KIND: cls for cls in (CompressionPlan, GroupPlan, StudentConfig, PruneConfig, QuantConfig)
}


def _encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and type(obj) in PLAN_KINDS.values():
        data = {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"kind": obj.KIND, "version": obj.VERSION, "data": data}
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict) and "kind" in obj:
        kind = obj["kind"]
        if not isinstance(kind, str) or kind not in PLAN_KINDS:
            raise ConfigError(f"unknown plan kind {kind!r}; known kinds {sorted(PLAN_KINDS)}")
        cls = PLAN_KINDS[kind]
        version = obj.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= cls.VERSION:
            raise ConfigError(f"{kind}: unsupported version {version!r} (this build reads 1..{cls.VERSION})")
        data = obj.get("data")
        if not isinstance(data, dict):
            raise ConfigError(f"{kind}: 'data' must be an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{kind}: unknown fields {unknown}; expected a subset of {sorted(names)}")
        try:
            return cls(**{k: _decode(v) for k, v in data.items()})
        except TypeError as e:
            raise ConfigError(f"{kind}: bad field value: {e}") from e
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


# The export's storage ladder, narrowest first: the rungs a weight is stored at.
SHIPPED_RUNGS = ("int2", "int4", "int8", "fp16", "fp32")


def shipped_rung(precision: str, group: str | None = None) -> str:
    """The storage rung (``int2 < int4 < int8 < fp16 < fp32``) the export gives a weight
    precision: the next rung up for an integer width, fp16 for bf16. With ``group`` (its
    group's rung), that of a layer in the group: int8 in an int4 / int2 group (its int8 part),
    fp32 when above the group (kept), else the group's. The one rule the export stores by
    (``export.precision``) and scoring rounds by (``compress.fake_quant``).
    """
    if precision.startswith("int"):
        bits = precision_bits(precision)
        own = next(r for r in SHIPPED_RUNGS[:3] if bits <= int(r[3:])) if bits <= 8 else "fp32"
    else:
        own = "fp16" if precision in ("fp16", "bf16") else "fp32"
    if group is None:
        return own
    if own == "int8" and group in ("int4", "int2"):
        return "int8"
    return "fp32" if SHIPPED_RUNGS.index(own) > SHIPPED_RUNGS.index(group) else group


def graph_float(weights: str, activations: str) -> str:
    """The float type (``"fp16"`` or ``"fp32"``) a group's exported graph runs, given its plan
    ``weights`` and ``activations``: that of a float group's weights (fp16 for fp16 and bf16,
    fp32 for fp32), whatever its activations; for an integer group (int8 QDQ, int4 / int2
    weight-only), fp16 where its activations are fp16 or bf16 (the form a GPU target ships:
    fp16 float parts and KV cache), else fp32 (``"int8"`` activations included: the W8A8 layers'
    inputs are int8 in either). The one rule the export builds graphs by and scoring rounds by.
    """
    rung = shipped_rung(weights)
    if rung in ("fp16", "fp32"):
        return rung
    return "fp16" if activations in ("fp16", "bf16") else "fp32"


__all__ = [
    "SHIPPED_RUNGS",
    "graph_float",
    "ACTIVATION_PRECISIONS",
    "CompressionPlan",
    "GroupPlan",
    "IMPORTANCE_METHODS",
    "MAX_LAYER_PRUNE",
    "MAX_MODULE_PRUNE",
    "MIN_CHANNELS",
    "OP_KINDS",
    "PLAN_KINDS",
    "PruneConfig",
    "QuantConfig",
    "StudentConfig",
    "WEIGHT_PRECISIONS",
    "precision_bits",
    "shipped_rung",
    "weight_precision_for_bits",
]
