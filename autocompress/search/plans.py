"""Plans the search needs besides the space's: the baselines, and one-line plan summaries."""

from __future__ import annotations

from autocompress.compress.plan import CompressionPlan, GroupPlan
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.voice import MODULE_GROUPS

BASELINES = ("teacher_fp32", "teacher_fp16", "seed_recipe")


def baseline_plan(name: str) -> CompressionPlan:
    """The preset plan of a baseline trial (from :mod:`autocompress.compress`).

    Raises:
        ConfigError: for a name that is not a baseline.
    """
    from autocompress.compress import presets

    makers = {"teacher_fp32": presets.teacher_fp32, "teacher_fp16": presets.teacher_fp16,
              "seed_recipe": presets.seed_recipe}
    if name not in makers:
        raise ConfigError(f"unknown baseline {name!r}; expected one of {list(makers)}")
    return makers[name]()


def _group_summary(g: GroupPlan) -> str:
    parts = []
    q = g.quant
    weights = q.weights if not q.op_weights else "/".join(
        f"{k}:{v}" for k, v in sorted({**{"*": q.weights}, **q.op_weights}.items())
    )
    parts.append(weights)
    if q.weights.startswith("int") and q.activations in ("fp16", "bf16"):
        parts.append("fp16 floats")  # its graph's float parts and KV cache (a GPU target's), not W8A16
    elif q.activations != q.weights or q.op_weights:  # "int8" alone is W8A8, "fp16" alone an fp16 graph
        parts.append(f"act {q.activations}")
    if g.prune.ratio or g.prune.layers or g.prune.depth_ratio:
        parts.append(f"prune {g.prune.ratio:.0%}" + (f" depth {g.prune.depth_ratio:.0%}" if g.prune.depth_ratio else ""))
    if g.student.width_mult != 1.0:
        parts.append(f"width x{g.student.width_mult:g}")
    if g.student.depth_mult != 1.0:
        parts.append(f"depth x{g.student.depth_mult:g}")
    return " ".join(parts)


def plan_summary(plan: CompressionPlan) -> str:
    """One line: each compressed group and what is done to it, e.g. ``gpt int8 prune 20% | dec fp16``."""
    order = {g: i for i, g in enumerate(MODULE_GROUPS)}
    groups = sorted(
        ((n, g) for n, g in plan.groups.items() if not g.is_identity), key=lambda x: order.get(x[0], 99)
    )
    if not groups:
        return "teacher (fp32, unchanged)"
    return " | ".join(f"{n} {_group_summary(g)}" for n, g in groups)


__all__ = ["BASELINES", "baseline_plan", "plan_summary"]
