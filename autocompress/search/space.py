"""Search spaces as data: ``search_spaces/*.toml`` -> :class:`SearchSpace` -> compression plans.

A space file says, per module group, which prune ratios, weight bit widths and student widths
(and depths) the search may pick, whether the search may leave the group as the teacher has it
(``skip``), and the search defaults that fit the voice it is written for (fine-tune steps per
trial, number of trials, fine-tuning hyperparameters, early-abort rule).

File layout::

    [space]                       # what this space is for
    name = "gpt-sovits-v2"
    description = "..."
    steps = 5000                  # default --steps
    trials = 60                   # default --trials

    [finetune]                    # all optional; defaults below
    lr = 1e-4
    batch_size = 4
    eval_every = 50               # steps between teacher-distance checks
    patience = 4                  # checks without improvement before a trial counts as stalled
    far_behind = 3.0              # prune when the distance is this many times the Pareto set's
    eval_items = 8                # held-out items for the teacher distance
    quality_items = 3             # held-out sentences spoken end to end for scoring (<= eval_items)
    warmup_checks = 2             # checks before a trial may be abandoned
    grad_clip = 1.0               # gradient-norm clip

    [groups.gpt]                  # one table per module group
    prune = [0.0, 0.1, 0.2, 0.3]  # structured-pruning ratios
    bits = [16, 8, 4]             # weight bit widths (32, 16, or 2..8)
    width = [1.0, 0.75]           # student width multipliers, (0, 1]
    depth = [1.0]                 # optional: student depth multipliers, (0, 1] (ref_enc has no depth)
    activations = ["fp16"]        # optional, not searched: they follow the weights (see below)
    skip = "allowed"              # "never" | "allowed" | "always": may the group stay as the teacher?

Every problem in a file is reported at once, each with its line and key.

Activations: the exported graph builds each group from its weights and the target alone, so
a plan records the activations that graph runs, whatever the ``activations`` choice: ``"fp16"``
for 16-bit weights (an fp16 graph; bf16 ships as fp16) and for integer weights on a target that
runs fp16 (a GPU: int8 W8A8 or weight-only int4 layers in a graph whose float parts are fp16);
on a CPU target ``"int8"`` for 5- to 8-bit weights (W8A8) and ``"fp32"`` for int4 / int2; fp32
weights run an fp32 graph. A plan asked for twice under another name so reuses the earlier
trial's result. So ``activations`` is read (and
checked) for older files but is never a sampled dimension: several choices would only spend
trials on repeats.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autocompress.compress.plan import (
    ACTIVATION_PRECISIONS,
    MAX_LAYER_PRUNE,
    CompressionPlan,
    GroupPlan,
    PruneConfig,
    QuantConfig,
    StudentConfig,
    weight_precision_for_bits,
)
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.voice import MODULE_GROUPS

SKIP_CHOICES = ("never", "allowed", "always")
ALLOWED_BITS = (32, 16, 8, 7, 6, 5, 4, 3, 2)
NO_DEPTH_GROUPS = ("ref_enc",)  # groups whose students keep every layer (the compressor refuses a depth)


class ParamSource(Protocol):
    """What a space needs from an Optuna trial: ``suggest_categorical``."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class FinetuneSettings:
    """How each trial is fine-tuned against the teacher, and when it is abandoned."""

    lr: float = 1e-4
    batch_size: int = 4
    eval_every: int = 50  # steps between teacher-distance checks
    patience: int = 4  # checks without a 1 % improvement before the trial counts as stalled
    far_behind: float = 3.0  # prune when distance > far_behind x the Pareto set's at that step
    warmup_checks: int = 2  # checks before the abort rule may fire
    grad_clip: float = 1.0
    eval_items: int = 8  # held-out items the teacher distance is measured on
    quality_items: int = 3  # held-out sentences spoken end to end for the quality score

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class GroupSpace:
    """The choices for one module group."""

    name: str
    prune: tuple[float, ...] = (0.0,)
    bits: tuple[int, ...] = (32,)
    width: tuple[float, ...] = (1.0,)
    depth: tuple[float, ...] = (1.0,)
    activations: tuple[str, ...] = ("fp32",)
    skip: str = "never"

    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Parameter name -> choices, for every dimension with more than one choice."""
        out: dict[str, tuple[Any, ...]] = {}
        if self.skip == "always":
            return out
        if self.skip == "allowed":
            out[f"{self.name}.skip"] = (False, True)
        for dim in ("prune", "bits", "width", "depth"):  # activations follow the weights: not sampled
            values = getattr(self, dim)
            if len(values) > 1:
                out[f"{self.name}.{dim}"] = values
        return out

    @property
    def can_compress(self) -> bool:
        """Whether some choice of the group changes it from the teacher."""
        if self.skip == "always":
            return False
        return (any(p != 0.0 for p in self.prune) or any(b != 32 for b in self.bits)
                or any(m != 1.0 for m in self.width + self.depth)
                or any(_meant_activations(a) != "fp32" for a in self.activations))

    def plan(self, params: Mapping[str, Any]) -> GroupPlan | None:
        """The group's plan for chosen ``params`` (None when the group is left as the teacher)."""
        if self.skip == "always" or (self.skip == "allowed" and params.get(f"{self.name}.skip")):
            return None

        def pick(dim: str) -> Any:
            return params.get(f"{self.name}.{dim}", getattr(self, dim)[0])

        weights = weight_precision_for_bits(int(pick("bits")))
        return GroupPlan(
            student=StudentConfig(width_mult=float(pick("width")), depth_mult=float(pick("depth"))),
            prune=PruneConfig(ratio=float(pick("prune"))),
            quant=QuantConfig(weights=weights, activations=_meant_activations(str(pick("activations")), weights)),
        )


def _meant_activations(activations: str, weights: str = "fp32") -> str:
    """A space's activation choice as the plan records it, one name per student built: what
    the group's layer inputs round to (:func:`~autocompress.compress.fake_quant.layer_activations`),
    set by the weights whatever the choice: int8 with 5- to 8-bit weights (W8A8), fp16 with
    16-bit weights (an fp16 graph), fp32 elsewhere. The float an integer group's graph runs is
    the target's to set (:func:`~autocompress.compress.deploy.with_deployable_precisions`)."""
    from autocompress.compress.fake_quant import layer_activations

    return layer_activations("fp32" if weights.startswith("int") else activations, weights)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search-space file."""

    name: str
    description: str
    steps: int  # default fine-tune steps per trial
    trials: int  # default number of trials
    groups: tuple[GroupSpace, ...]
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    source: str = ""  # the file it came from

    def distributions(self) -> dict[str, tuple[Any, ...]]:
        """Every searched parameter and its choices, in a fixed order."""
        out: dict[str, tuple[Any, ...]] = {}
        for g in self.groups:
            out.update(g.choices())
        return out

    def suggest(self, trial: ParamSource) -> dict[str, Any]:
        """Ask ``trial`` for every searched parameter; return name -> value."""
        return {name: trial.suggest_categorical(name, list(ch)) for name, ch in self.distributions().items()}

    def plan(self, params: Mapping[str, Any], name: str = "") -> CompressionPlan:
        """Build the compression plan for chosen parameters (missing ones take the first choice)."""
        groups = {}
        for g in self.groups:
            gp = g.plan(params)
            if gp is not None and not gp.is_identity:
                groups[g.name] = gp
        return CompressionPlan(groups=groups, name=name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "steps": self.steps,
            "trials": self.trials,
            "finetune": self.finetune.to_dict(),
            "groups": {
                g.name: {
                    "prune": list(g.prune), "bits": list(g.bits), "width": list(g.width),
                    "depth": list(g.depth), "activations": list(g.activations), "skip": g.skip,
                }
                for g in self.groups
            },
        }

    @property
    def sha256(self) -> str:
        """Hash of the space's meaning (not its comments, layout or default trial count): a study's identity."""
        data = self.to_dict()
        data.pop("description")
        data.pop("trials")  # how long to search, as --trials (which a resume may change), not what
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def fallbacks(self, target: Any) -> str:
        """One line naming the weight precisions of this space ``target`` cannot run and what its
        trials run instead (the deploy fallback), grouped by substitution; "" when it runs all."""
        from autocompress.compress.deploy import GROUP_OP_KINDS, fallback_precision

        swaps: dict[tuple[str, str], list[str]] = {}
        for g in self.groups:
            if g.skip == "always":
                continue
            for bits in g.bits:
                asked = weight_precision_for_bits(bits)
                for kind in GROUP_OP_KINDS.get(g.name, ()):
                    ran = fallback_precision(asked, kind, target)
                    if ran != asked and g.name not in swaps.setdefault((asked, ran), []):
                        swaps[(asked, ran)].append(g.name)
        if not swaps:
            return ""
        parts = [f"{a} as {b} ({', '.join(groups)})" for (a, b), groups in swaps.items()]
        return (f"target {target.name} cannot run some of space {self.name!r}'s weight precisions; its trials "
                f"run {'; '.join(parts)} (the plans and their summaries say so)")

    def summary(self) -> str:
        """One line per group, for study notes and the CLI."""
        lines = [f"{self.name}: {self.description}".rstrip(": ")]
        for g in self.groups:
            if g.skip == "always":
                lines.append(f"  {g.name}: left as the teacher")
                continue
            parts = [f"prune {list(g.prune)}", f"bits {list(g.bits)}", f"width {list(g.width)}"]
            if g.depth != (1.0,):
                parts.append(f"depth {list(g.depth)}")
            parts.append(f"activations {list(g.activations)}")
            if g.skip == "allowed":
                parts.append("may skip")
            lines.append(f"  {g.name}: " + ", ".join(parts))
        return "\n".join(lines)


# --------------------------------------------------------------------------- loading

_SPACE_KEYS = {"name": str, "description": str, "steps": int, "trials": int}
_FINETUNE_KEYS = {
    "lr": float, "batch_size": int, "eval_every": int, "patience": int, "far_behind": float,
    "warmup_checks": int, "grad_clip": float, "eval_items": int, "quality_items": int,
}
_GROUP_KEYS = ("prune", "bits", "width", "depth", "activations", "skip")


def shipped_spaces_dir() -> Path:
    """The repository's ``search_spaces/`` folder."""
    return Path(__file__).resolve().parents[2] / "search_spaces"


def resolve_space_path(path: str | Path) -> Path:
    """Find a space file: as given, else by name in ``search_spaces/``.

    Raises:
        ConfigError: when neither exists (the message lists the shipped files).
    """
    p = Path(path)
    if p.is_file():
        return p
    if len(p.parts) > 1 and p.parent != Path("search_spaces"):  # a typo must not fall back to a shipped file
        raise ConfigError(f"search space {str(path)!r} does not exist")
    for candidate in (shipped_spaces_dir() / p.name, shipped_spaces_dir() / f"{p.name}.toml"):
        if candidate.is_file():
            return candidate
    shipped = sorted(f.name for f in shipped_spaces_dir().glob("*.toml"))
    raise ConfigError(f"search space {str(path)!r} not found; shipped spaces: {', '.join(shipped) or 'none'}")


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space file.

    Raises:
        ConfigError: naming the file, line and key of every problem found.
    """
    p = resolve_space_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_space(text, source=str(p))


def parse_space(text: str, source: str = "<space>") -> SearchSpace:
    """Validate the TOML text of a search space; see :func:`load_space`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    problems: list[str] = []

    def problem(table: str, key: str | None, message: str) -> None:
        line = _line_of(text, table, key)
        where = f"{source}:{line}" if line else source
        dotted = f"{table}.{key}" if key else table
        problems.append(f"{where}: {dotted}: {message}")

    for key in sorted(set(data) - {"space", "finetune", "groups"}):
        problem(key, None, "unknown table; expected [space], [finetune] and [groups.<group>]")

    space = data.get("space")
    if not isinstance(space, dict):
        problem("space", None, "missing [space] table with name, steps and trials")
        space = {}
    head = _typed(space, _SPACE_KEYS, "space", problem, required=("name", "steps", "trials"))
    for key in ("steps", "trials"):
        if key in head and head[key] < 1:
            problem("space", key, f"must be >= 1, got {head[key]}")

    ft_raw = data.get("finetune", {})
    if not isinstance(ft_raw, dict):
        problem("finetune", None, "must be a table")
        ft_raw = {}
    ft = _typed(ft_raw, _FINETUNE_KEYS, "finetune", problem, required=())
    for key in ("lr", "batch_size", "eval_every", "patience", "grad_clip", "eval_items", "quality_items"):
        if key in ft and not 0 < ft[key] < math.inf:
            problem("finetune", key, f"must be a finite number > 0, got {ft[key]}")
    if "far_behind" in ft and not ft["far_behind"] > 1:
        problem("finetune", "far_behind", f"must be > 1 (a multiple of the Pareto set's distance), got {ft['far_behind']}")
    if "warmup_checks" in ft and ft["warmup_checks"] < 0:
        problem("finetune", "warmup_checks", f"must be >= 0, got {ft['warmup_checks']}")
    eval_items = ft.get("eval_items", FinetuneSettings.eval_items)
    if ft.get("quality_items", 0) > eval_items:  # the spoken sentences are some of the held-out items
        problem("finetune", "quality_items", f"must be at most eval_items ({eval_items}), got {ft['quality_items']}")

    groups_raw = data.get("groups")
    groups: list[GroupSpace] = []
    if not isinstance(groups_raw, dict) or not groups_raw:
        problem("groups", None, f"needs at least one [groups.<group>] table; groups are {list(MODULE_GROUPS)}")
        groups_raw = {}
    for gname, graw in groups_raw.items():
        table = f"groups.{gname}"
        if gname not in MODULE_GROUPS:
            problem(table, None, f"unknown module group; expected one of {list(MODULE_GROUPS)}")
            continue
        if not isinstance(graw, dict):
            problem(table, None, "must be a table")
            continue
        g = _group(gname, graw, table, problem)
        if g is not None:
            groups.append(g)

    if problems:
        raise ConfigError(f"invalid search space ({len(problems)} problems): " + "; ".join(problems))
    order = {g: i for i, g in enumerate(MODULE_GROUPS)}
    space = SearchSpace(
        name=head["name"],
        description=head.get("description", ""),
        steps=head["steps"],
        trials=head["trials"],
        groups=tuple(sorted(groups, key=lambda g: order[g.name])),
        finetune=FinetuneSettings(**ft),
        source=source,
    )
    if not any(g.can_compress for g in space.groups):
        raise ConfigError(
            f"search space {space.name!r} ({source}) compresses nothing: every group is skipped or has only "
            "the teacher's settings to choose from"
        )
    return space


def _group(gname: str, raw: dict[str, Any], table: str, problem: Any) -> GroupSpace | None:
    ok = True
    for key in sorted(set(raw) - set(_GROUP_KEYS)):
        problem(table, key, f"unknown key; expected some of {list(_GROUP_KEYS)}")
        ok = False
    values: dict[str, Any] = {}

    def number_list(key: str, kind: type, check: Any, rule: str) -> None:
        nonlocal ok
        if key not in raw:
            return
        v = raw[key]
        if not isinstance(v, list) or not v:
            problem(table, key, f"must be a non-empty list, got {v!r}")
            ok = False
            return
        out = []
        for x in v:
            if kind is float and isinstance(x, int) and not isinstance(x, bool):
                x = float(x)
            if not isinstance(x, kind) or isinstance(x, bool) or not check(x):
                problem(table, key, f"{x!r} is not allowed; {rule}")
                ok = False
                continue
            out.append(x)
        if len(set(out)) != len(out):
            problem(table, key, f"has repeated values {v!r}")
            ok = False
        values[key] = tuple(out)

    number_list("prune", float, lambda x: 0.0 <= x <= MAX_LAYER_PRUNE, f"ratios are 0..{MAX_LAYER_PRUNE}")
    number_list("bits", int, lambda x: x in ALLOWED_BITS, f"bit widths are {list(ALLOWED_BITS)}")
    number_list("width", float, lambda x: 0.0 < x <= 1.0, "multipliers are in (0, 1]")
    if gname in NO_DEPTH_GROUPS:
        number_list("depth", float, lambda x: x == 1.0, f"{gname} students have no depth: only 1.0")
    else:
        number_list("depth", float, lambda x: 0.0 < x <= 1.0, "multipliers are in (0, 1]")
    if "activations" in raw:
        v = raw["activations"]
        if not isinstance(v, list) or not v or any(a not in ACTIVATION_PRECISIONS for a in v):
            problem(table, "activations", f"must be a non-empty list of {list(ACTIVATION_PRECISIONS)}, got {v!r}")
            ok = False
        elif len(set(v)) != len(v):
            problem(table, "activations", f"has repeated values {v!r}")
            ok = False
        else:
            values["activations"] = tuple(v)
    if "skip" in raw:
        if raw["skip"] not in SKIP_CHOICES:
            problem(table, "skip", f"must be one of {list(SKIP_CHOICES)}, got {raw['skip']!r}")
            ok = False
        else:
            values["skip"] = raw["skip"]
    return GroupSpace(name=gname, **values) if ok else None


def _typed(raw: dict[str, Any], keys: dict[str, type], table: str, problem: Any, required: Sequence[str]) -> dict:
    out: dict[str, Any] = {}
    for key in sorted(set(raw) - set(keys)):
        problem(table, key, f"unknown key; expected some of {sorted(keys)}")
    for key in required:
        if key not in raw:
            problem(table, key, "is required")
    for key, kind in keys.items():
        if key not in raw:
            continue
        v = raw[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or isinstance(v, bool):
            problem(table, key, f"must be {kind.__name__}, got {v!r}")
            continue
        out[key] = v
    return out


_HEADER = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """Return the 1-based line of ``key`` inside ``[table]`` (or of the header), if present."""
    current = ""
    header_line = None
    for i, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m:
            current = m.group(1).replace('"', "").replace(" ", "")
            if current == table and header_line is None:
                header_line = i
                if key is None:
                    return i
            continue
        if current == table and key is not None and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return i
    return header_line


__all__ = [
    "ALLOWED_BITS",
    "FinetuneSettings",
    "GroupSpace",
    "NO_DEPTH_GROUPS",
    "SKIP_CHOICES",
    "SearchSpace",
    "load_space",
    "parse_space",
    "resolve_space_path",
    "shipped_spaces_dir",
]
