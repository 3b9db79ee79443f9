"""Search-space files: every shipped file validates; errors name the line and key; plans follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autocompress.compress import compress
from autocompress.exceptions import ConfigError
from autocompress.search.space import load_space, parse_space, shipped_spaces_dir

SHIPPED = sorted(shipped_spaces_dir().glob("*.toml"))


def test_the_two_spaces_ship():
    assert {p.name for p in SHIPPED} >= {"demo.toml", "gpt_sovits_v2.toml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_is_valid_and_maps_to_plans(path: Path):
    space = load_space(path)
    assert space.steps >= 1 and space.trials >= 4  # room for the three baselines and a search
    dist = space.distributions()
    assert dist, "a space must search something"
    # The first and the last choice of every dimension both make a valid, distinct plan.
    first = space.plan({k: v[0] for k, v in dist.items()})
    last = space.plan({k: v[-1] for k, v in dist.items()})
    assert first.to_dict() != last.to_dict()
    assert type(first).from_json(last.to_json()) == last


def test_user_space_defaults_to_5000_steps():
    assert load_space(shipped_spaces_dir() / "gpt_sovits_v2.toml").steps == 5000


def test_errors_name_file_line_and_key_and_are_all_reported():
    text = (shipped_spaces_dir() / "demo.toml").read_text()
    bad = re.sub(r"(?m)^trials = \d+", "trials = 0", text.replace("bits = [16, 8, 4]", "bits = [16, 9]"))
    bad = bad.replace("[groups.ref_enc]", "[groups.vocoder]\nprune = [0.1]\n\n[groups.ref_enc]")
    with pytest.raises(ConfigError) as e:
        parse_space(bad, source="bad.toml")
    msg = str(e.value)
    lines = bad.splitlines()
    bits_line = next(i for i, ln in enumerate(lines, 1) if ln.startswith("bits = [16, 9]"))
    trials_line = next(i for i, ln in enumerate(lines, 1) if ln.startswith("trials = 0"))
    assert f"bad.toml:{bits_line}: groups.gpt.bits: 9 is not allowed" in msg
    assert f"bad.toml:{trials_line}: space.trials: must be >= 1" in msg
    assert "groups.vocoder: unknown module group" in msg
    assert "3 problems" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "snippet, expected",
    [
        ("[groups.gpt]\nprune = [0.5]", "groups.gpt.prune: 0.5 is not allowed"),
        ("[groups.gpt]\nwidth = [0.0]", "groups.gpt.width: 0.0 is not allowed"),
        ("[groups.gpt]\nskip = \"sometimes\"", "groups.gpt.skip: must be one of"),
        ("[groups.gpt]\nprune = []", "groups.gpt.prune: must be a non-empty list"),
        ("[groups.gpt]\nbits = [8, 8]", "groups.gpt.bits: has repeated values"),
        ("[groups.gpt]\nspeed = [1]", "groups.gpt.speed: unknown key"),
        ("[groups.gpt]\nbits = [8]\n[finetune]\nlr = -1.0", "finetune.lr: must be a finite number > 0"),
        ("[groups.gpt]\nbits = [8]\n[finetune]\nquality_items = 9", "finetune.quality_items: must be at most eval_items"),
        ("[groups.gpt]\nbits = [8]\nactivations = [\"fp16\", \"fp16\"]", "groups.gpt.activations: has repeated values"),
        ("[groups.gpt]\nbits = [8]\n[groups.ref_enc]\ndepth = [1.0, 0.5]",
         "groups.ref_enc.depth: 0.5 is not allowed; ref_enc students have no depth"),
    ],
)
def test_each_rule_fires(snippet: str, expected: str):
    text = f"[space]\nname = \"x\"\nsteps = 1\ntrials = 4\n{snippet}\n"
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        parse_space(text, source="x.toml")


def test_syntax_errors_are_one_line_with_position():
    with pytest.raises(ConfigError, match=r"x.toml: not valid TOML: .*line 2"):
        parse_space("[space]\nname = \n", source="x.toml")


def test_skip_choices_and_plans():
    space = parse_space(
        "[space]\nname='s'\nsteps=1\ntrials=4\n"
        "[groups.gpt]\nbits=[8,4]\nprune=[0.0,0.2]\nskip='allowed'\n"
        "[groups.dec]\nbits=[16]\n[groups.ref_enc]\nskip='always'\n"
    )
    dist = space.distributions()
    assert set(dist) == {"gpt.skip", "gpt.bits", "gpt.prune"}  # single choices and 'always' are not searched
    plan = space.plan({"gpt.skip": False, "gpt.bits": 4, "gpt.prune": 0.2})
    assert plan.group("gpt").quant.weights == "int4" and plan.group("gpt").prune.ratio == 0.2
    assert plan.group("dec").quant.weights == "fp16"
    assert "ref_enc" not in plan.groups
    skipped = space.plan({"gpt.skip": True, "gpt.bits": 4, "gpt.prune": 0.2})
    assert "gpt" not in skipped.groups


def test_a_changed_space_has_another_identity():
    base = "[space]\nname='s'\nsteps=1\ntrials=4\n[groups.gpt]\nbits=[8,4]\n"
    a = parse_space(base)
    assert parse_space("# a comment\n" + base).sha256 == a.sha256
    assert parse_space(base.replace("[8,4]", "[8]")).sha256 != a.sha256
    assert parse_space(base.replace("steps=1", "steps=2")).sha256 != a.sha256
    assert parse_space(base.replace("trials=4", "trials=40")).sha256 == a.sha256  # how long, like --trials


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_finetune_numbers_must_be_finite(value):
    with pytest.raises(ConfigError, match=f"finetune.lr: must be a finite number > 0, got {value}"):
        parse_space(f"[space]\nname='s'\nsteps=1\ntrials=4\n[finetune]\nlr={value}\n[groups.gpt]\nbits=[8,4]\n")


@pytest.mark.parametrize("groups", [
    '[groups.gpt]\nskip="always"\nbits=[8,4]', "[groups.gpt]\nbits=[32]\nprune=[0.0]",
    '[groups.gpt]\nskip="allowed"\nbits=[32]\nactivations=["fp32"]',  # a choice, but both sides are the teacher
])
def test_a_space_that_compresses_nothing_is_refused(groups):
    with pytest.raises(ConfigError, match="compresses nothing"):
        parse_space(f"[space]\nname='s'\nsteps=1\ntrials=4\n{groups}\n")
    parse_space("[space]\nname='s'\nsteps=1\ntrials=4\n[groups.gpt]\nbits=[8]\n")  # one fixed plan is a search


def test_a_mistyped_space_path_is_not_taken_for_a_shipped_name(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        load_space(tmp_path / "typo" / "gpt_sovits_v2.toml")
    assert load_space("gpt_sovits_v2").name == load_space("gpt_sovits_v2.toml").name  # names still resolve
    monkeypatch.chdir(tmp_path)  # the README's form, from a folder that has no search_spaces/
    assert load_space("search_spaces/demo.toml").name == load_space("demo").name


def test_demo_space_plans_compress_a_tiny_voice():
    import random

    import torch

    from autocompress.models.gpt_sovits import SynthesizerTrn, Text2SemanticGPT, gpt_tiny, sovits_tiny
    from autocompress.models.gpt_sovits.voice import Voice

    torch.manual_seed(0)
    teacher = Voice(Text2SemanticGPT(gpt_tiny()).eval(), SynthesizerTrn(sovits_tiny(), include_enc_q=False).eval())
    space = load_space("demo")
    rng = random.Random(1)
    params = {k: rng.choice(v) for k, v in space.distributions().items()}
    params.update({"gpt.prune": 0.3, "dec.prune": 0.3, "dec.width": 0.75})
    student = compress(teacher, space.plan(params))
    n_t = sum(p.numel() for p in teacher.sovits.dec.parameters())
    n_s = sum(p.numel() for p in student.sovits.dec.parameters())
    assert n_s < 0.7 * n_t
