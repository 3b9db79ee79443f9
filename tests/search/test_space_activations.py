"""A space's int8 activations build the fp32-activation student, so plans record them alike."""

from __future__ import annotations

import pytest

from autocompress.compress.fake_quant import layer_activations
from autocompress.exceptions import ConfigError
from autocompress.search.space import ALLOWED_BITS, parse_space

HEAD = "[space]\nname='s'\nsteps=1\ntrials=4\n"


def _space(bits: int, activations: str):
    return parse_space(f"{HEAD}[groups.dec]\nbits=[{bits}]\nprune=[0.2]\nactivations={activations}\n")


@pytest.mark.parametrize("bits", ALLOWED_BITS)
def test_int8_activations_make_the_plan_fp32_activations_make(bits):
    int8 = _space(bits, '["int8"]').plan({})
    fp32 = _space(bits, '["fp32"]').plan({})
    assert int8.to_dict()["data"]["groups"] == fp32.to_dict()["data"]["groups"]  # a repeat, not a new trial
    # ... and it is the student int8 asked for: every layer's input rounds as it would have
    weights = fp32.group("dec").quant.weights
    assert layer_activations(int8.group("dec").quant.activations, weights) == layer_activations("int8", weights)


def test_a_sampled_int8_choice_repeats_the_fp32_plan_and_float_choices_stay():
    space = parse_space(f'{HEAD}[groups.gpt]\nbits=[16, 8, 4]\nactivations=["fp16", "int8"]\n')
    # bits: (int8 asked, fp16 asked); an int4 group's graph runs fp32 whatever the choice
    meant = {16: ("fp16", "fp16"), 8: ("int8", "int8"), 4: ("fp32", "fp32")}
    for bits, (int8, fp16) in meant.items():
        assert space.plan({"gpt.bits": bits, "gpt.activations": "int8"}).group("gpt").quant.activations == int8
        assert space.plan({"gpt.bits": bits, "gpt.activations": "fp16"}).group("gpt").quant.activations == fp16


@pytest.mark.parametrize("bits", [5, 6, 7, 8])
def test_a_w8a8_group_records_int8_activations_whatever_the_choice(bits):
    """int8 weights ship W8A8 whatever the activations: "gpt int8 act fp16" read as weight-only
    int8 with fp16 inputs, and fp16 and fp32 choices built the same student as two trials."""
    space = parse_space(f'{HEAD}[groups.gpt]\nbits=[{bits}]\nactivations=["fp16", "fp32", "bf16"]\n')
    assert {space.plan({"gpt.activations": a}).group("gpt").quant.activations for a in ("fp16", "fp32", "bf16")} == {"int8"}


def test_activations_are_never_a_sampled_dimension():
    """Every choice builds the student the weights set, so sampling them only spent trials on repeats."""
    space = parse_space(f'{HEAD}[groups.gpt]\nactivations=["fp32", "int8", "fp16", "bf16"]\nbits=[8, 4]\n', source="s")
    assert set(space.groups[0].choices()) == {"gpt.bits"}
    with pytest.raises(ConfigError, match="repeated values"):
        parse_space(f'{HEAD}[groups.gpt]\nactivations=["fp16", "fp16"]\nbits=[8]\n')


def test_int8_activations_alone_compress_nothing():
    with pytest.raises(ConfigError, match="compresses nothing"):
        parse_space(f'{HEAD}[groups.gpt]\nbits=[32]\nactivations=["int8"]\n')
    with pytest.raises(ConfigError, match="compresses nothing"):  # an fp32 graph runs fp32 inputs whatever the choice
        parse_space(f'{HEAD}[groups.gpt]\nbits=[32]\nactivations=["fp16"]\n')


def test_with_16_bit_weights_fp16_and_int8_activations_make_one_plan():
    """The case a space with ``activations = ["fp16", "int8"]`` sampled twice: an fp16 graph either way."""
    space = parse_space(f'{HEAD}[groups.gpt]\nbits=[16, 4]\nprune=[0.2]\nactivations=["fp16", "int8"]\n')
    fp16, int8 = (space.plan({"gpt.bits": 16, "gpt.activations": a}).to_dict()["data"]["groups"] for a in ("fp16", "int8"))
    assert fp16 == int8
    four = {a: space.plan({"gpt.bits": 4, "gpt.activations": a}).group("gpt").quant.activations for a in ("fp16", "int8")}
    assert four == {"fp16": "fp32", "int8": "fp32"}  # weight-only int4 layers run in an fp32 graph: one student


def test_the_precisions_a_target_cannot_run_are_named_once():
    """The daemon replaced them trial by trial without a word (int8 on an fp16-only Jetson)."""
    from autocompress.targets import load_target

    space = parse_space(f'{HEAD}[groups.gpt]\nbits=[16, 8, 4]\n[groups.dec]\nbits=[16, 8]\n')
    line = space.fallbacks(load_target("jetson-nano"))
    assert line.startswith("target jetson-nano cannot run some of space 's'")
    assert "int8 as fp16 (gpt, dec)" in line and "int4 as fp16 (gpt)" in line and "\n" not in line
    assert space.fallbacks(load_target("rtx3060")) == ""
    assert "fp16 as fp32 (gpt, dec)" in space.fallbacks(load_target("cpu"))


def test_int8_activations_alone_give_nothing_to_fine_tune():
    """A 16-bit group with int8 activations builds the fp16 graph's student: it was fine-tuned for nothing."""
    from autocompress.compress.plan import CompressionPlan, GroupPlan, QuantConfig
    from autocompress.search.pipeline import needs_finetune

    cast = CompressionPlan({"dec": GroupPlan(quant=QuantConfig(weights="fp16", activations="int8"))})
    assert needs_finetune(cast) == set()
    w8a8 = CompressionPlan({"dec": GroupPlan(quant=QuantConfig(weights="int8", activations="int8"))})
    assert needs_finetune(w8a8) == {"dec"}
