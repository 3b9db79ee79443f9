"""A plan read from JSON (a hand-edited file, a stored trial) with values of the wrong type is
refused in one ConfigError naming the field, and numbers written as 0 or 0.0 make one plan."""

from __future__ import annotations

import json

import pytest

from autocompress.compress import CompressionPlan, GroupPlan, PruneConfig, QuantConfig, StudentConfig
from autocompress.exceptions import ConfigError


def _with_group(group_data: dict) -> dict:
    group = {"kind": "group_plan", "version": 1, "data": group_data}
    return {"kind": "compression_plan", "version": 1, "data": {"groups": {"gpt": group}}}


def _prune(data: dict) -> dict:
    return _with_group({"prune": {"kind": "prune", "version": 1, "data": data}})


def _quant(data: dict) -> dict:
    return _with_group({"quant": {"kind": "quant", "version": 1, "data": data}})


def _student(data: dict) -> dict:
    return _with_group({"student": {"kind": "student", "version": 1, "data": data}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a compression plan is a JSON object, got list"),
        (None, "a compression plan is a JSON object, got NoneType"),
        ({"kind": ["prune"], "version": 1, "data": {}}, r"unknown plan kind \['prune'\]"),
        ({"kind": "compression_plan", "version": True, "data": {}}, "unsupported version True"),
        ({"kind": "compression_plan", "version": 1, "data": {"groups": []}}, "groups must map group names"),
        ({"kind": "compression_plan", "version": 1, "data": {"name": 7}}, "name must be a string, got 7"),
        (_prune({"layers": None}), "layers must map unit names to ratios, got None"),
        (_prune({"layers": ["layers.0.ffn"]}), "layers must map unit names to ratios"),
        (_prune({"ratio": "0.3"}), "ratio must be a number, got '0.3'"),
        (_prune({"ratio": True}), "ratio must be a number, got True"),
        (_prune({"depth_ratio": None}), "depth_ratio must be a number, got None"),
        (_prune({"layers": {"layers.0.ffn": "half"}}), r"layers\['layers.0.ffn'\] must be a number"),
        (_quant({"op_weights": None}), "op_weights must map op kinds"),
        (_student({"width_mult": "0.5"}), "width_mult must be a number, got '0.5'"),
        (
            _with_group({"student": {"kind": "prune", "version": 1, "data": {}}}),
            "student must be a StudentConfig, got PruneConfig",
        ),
        (_with_group({"quant": "int8"}), "quant must be a QuantConfig, got str"),
    ],
)
def test_wrongly_typed_values_are_one_config_error(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        CompressionPlan.from_dict(data)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_building_configs_directly_checks_types_too() -> None:
    with pytest.raises(ConfigError, match="invalid GroupPlan: prune must be a PruneConfig, got float"):
        GroupPlan(prune=0.3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ratio must be a number, got None"):
        PruneConfig(ratio=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="op_weights must map op kinds"):
        QuantConfig(op_weights=["linear"])  # type: ignore[arg-type]


def test_integer_and_float_numbers_make_the_same_plan() -> None:
    """A ratio written 0 in one file and 0.0 in another is one plan, with one fingerprint and one JSON."""
    prune_ints = PruneConfig(ratio=0, layers={"layers.0.ffn": 0})
    prune_floats = PruneConfig(ratio=0.0, layers={"layers.0.ffn": 0.0})
    ints = CompressionPlan({"gpt": GroupPlan(student=StudentConfig(width_mult=1), prune=prune_ints)})
    floats = CompressionPlan({"gpt": GroupPlan(student=StudentConfig(width_mult=1.0), prune=prune_floats)})
    assert ints.fingerprint() == floats.fingerprint()
    assert ints.to_json() == floats.to_json()
    again = CompressionPlan.from_json(json.dumps(ints.to_dict()).replace("0.0", "0"))
    assert again.to_json() == floats.to_json()
    assert isinstance(again.group("gpt").prune.ratio, float)


def test_groups_listed_unchanged_do_not_change_the_fingerprint() -> None:
    """Listing a group with an identity plan does what leaving it out does: one fingerprint."""
    int8 = GroupPlan(quant=QuantConfig(weights="int8"))
    listed = CompressionPlan({"gpt": int8, "dec": GroupPlan()})
    assert listed.fingerprint() == CompressionPlan({"gpt": int8}).fingerprint()
    assert CompressionPlan({"flow": GroupPlan()}).fingerprint() == CompressionPlan().fingerprint()
    assert CompressionPlan({"gpt": int8}).fingerprint() != CompressionPlan().fingerprint()
