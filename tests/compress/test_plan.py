"""CompressionPlan: plain data, JSON round trip with allow-listed kinds, validation, presets."""

from __future__ import annotations

import json

import pytest

from autocompress.compress import (
    PRESETS,
    CompressionPlan,
    GroupPlan,
    PruneConfig,
    QuantConfig,
    StudentConfig,
    precision_bits,
    weight_precision_for_bits,
)
from autocompress.exceptions import ConfigError


def _rich_plan() -> CompressionPlan:
    return CompressionPlan(
        {
            "gpt": GroupPlan(
                student=StudentConfig(width_mult=0.5, depth_mult=0.75),
                prune=PruneConfig(
                    ratio=0.2, layers={"layers.0.ffn": 0.4}, depth_ratio=0.1, importance="taylor"
                ),
                quant=QuantConfig(weights="int4", activations="bf16"),
            ),
            "dec": GroupPlan(quant=QuantConfig(weights="fp16", op_weights={"conv_transpose": "int8"})),
        },
        name="rich",
    )


def test_json_round_trip_is_exact() -> None:
    plan = _rich_plan()
    text = plan.to_json()
    data = json.loads(text)
    assert data["kind"] == "compression_plan" and data["version"] == 1
    assert data["data"]["groups"]["gpt"]["data"]["prune"]["kind"] == "prune"
    again = CompressionPlan.from_json(text)
    assert again == plan
    assert again.to_json() == text
    assert again.group("flow") == GroupPlan()  # unlisted groups are identity plans
    assert again.group("flow").is_identity and not again.group("gpt").is_identity
    assert again.fingerprint() == plan.fingerprint() != CompressionPlan().fingerprint()
    assert CompressionPlan(plan.groups, name="other").fingerprint() == plan.fingerprint()


def test_from_dict_accepts_only_known_kinds_and_versions() -> None:
    data = _rich_plan().to_dict()
    bad_kind = json.loads(json.dumps(data))
    bad_kind["data"]["groups"]["gpt"]["data"]["prune"]["kind"] = "os.system"
    with pytest.raises(ConfigError, match=r"unknown plan kind 'os.system'; known kinds"):
        CompressionPlan.from_dict(bad_kind)
    newer = dict(data, version=99)
    with pytest.raises(ConfigError, match="unsupported version 99"):
        CompressionPlan.from_dict(newer)
    extra = json.loads(json.dumps(data))
    extra["data"]["groups"]["dec"]["data"]["quant"]["data"]["bits"] = 3
    with pytest.raises(ConfigError, match=r"quant: unknown fields \['bits'\]"):
        CompressionPlan.from_dict(extra)
    with pytest.raises(ConfigError, match="expected kind 'compression_plan'"):
        CompressionPlan.from_dict(data["data"]["groups"]["dec"])
    with pytest.raises(ConfigError, match="not valid JSON"):
        CompressionPlan.from_json("{")


def test_configs_reject_bad_values_with_every_problem() -> None:
    with pytest.raises(ConfigError, match=r"weights must be one of .*activations must be one of"):
        QuantConfig(weights="int1", activations="int4")
    with pytest.raises(ConfigError, match=r"width_mult must be in \(0, 1\], got 1.5"):
        StudentConfig(width_mult=1.5)
    with pytest.raises(ConfigError, match="importance must be one of"):
        PruneConfig(importance="random")
    with pytest.raises(ConfigError, match=r"depth_ratio = 0.70 removes more than 60%"):
        PruneConfig(depth_ratio=0.7)
    with pytest.raises(ConfigError, match="op_weights key 'embedding'"):
        QuantConfig(op_weights={"embedding": "int8"})
    with pytest.raises(ConfigError, match="must map group names to GroupPlan"):
        CompressionPlan({"gpt": PruneConfig()})  # type: ignore[dict-item]


def test_precision_helpers() -> None:
    assert [precision_bits(p) for p in ("fp32", "bf16", "int8", "int2")] == [32, 16, 8, 2]
    assert weight_precision_for_bits(16, "bf16") == "bf16"
    assert weight_precision_for_bits(3) == "int3"
    with pytest.raises(ConfigError, match="weight bits must be 32, 16 or 2..8, got 1"):
        weight_precision_for_bits(1)
    quant = QuantConfig(weights="fp16", op_weights={"linear": "int8"})
    assert quant.weight_precision("linear") == "int8" and quant.weight_precision("conv") == "fp16"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_plans_that_round_trip(name: str) -> None:
    plan = PRESETS[name]()
    assert plan.name == name
    assert CompressionPlan.from_json(plan.to_json()) == plan


def test_seed_recipe_contents() -> None:
    plan = PRESETS["seed_recipe"]()
    assert plan.group("gpt").quant.weight_precision("linear") == "int8"
    assert plan.group("ref_enc").quant == QuantConfig("fp16", "fp16")  # what its export ships
    assert plan.group("dec").quant.weights == "fp16"
    assert all(plan.group(g).prune.ratio == 0.3 for g in ("gpt", "enc_p", "flow", "dec"))
    assert PRESETS["teacher_fp32"]().group("dec").is_identity
