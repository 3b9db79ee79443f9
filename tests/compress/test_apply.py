"""compress(): every group of a voice, teacher untouched, deterministic, bare models, validation."""

from __future__ import annotations

import pytest
import torch
from compress_helpers import run_group

from autocompress.compress import (
    CalibrationExample,
    CompressionPlan,
    GroupPlan,
    PruneConfig,
    QuantConfig,
    StudentConfig,
    compress,
    has_fake_quant,
    seed_recipe,
    validate_plan,
    voice_calibration,
)
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits.voice import MODULE_GROUPS, Voice

EVERYTHING = CompressionPlan(
    {
        "gpt": GroupPlan(
            student=StudentConfig(depth_mult=0.67), prune=PruneConfig(0.25), quant=QuantConfig("int8")
        ),
        "enc_p": GroupPlan(prune=PruneConfig(0.3), quant=QuantConfig("int4", activations="int8")),
        "flow": GroupPlan(prune=PruneConfig(0.2, depth_ratio=0.5), quant=QuantConfig("int8")),
        "dec": GroupPlan(
            student=StudentConfig(width_mult=0.75), prune=PruneConfig(0.2), quant=QuantConfig("fp16")
        ),
        "ref_enc": GroupPlan(prune=PruneConfig(0.25), quant=QuantConfig("int6")),
    }
)


def _synthesize(voice: Voice) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    phones = torch.randint(1, 300, (1, 8), generator=gen)
    bert = torch.randn(1, 1024, 8, generator=gen)
    with torch.no_grad():
        logits = voice.gpt.prefill_logits(phones, bert, torch.randint(0, 1024, (1, 5), generator=gen))
        codes = torch.randint(0, 1024, (1, 1, 6), generator=gen)
        refer = torch.rand(1, 1025, 20, generator=gen)
        wav = voice.sovits.decode(codes, phones[:, :6], refer, noise_scale=0.0)
    return logits, wav


@pytest.fixture(scope="module")
def teacher_and_student(tiny_voice):  # noqa: ANN001, ANN201
    before = {k: v.clone() for m in (tiny_voice.gpt, tiny_voice.sovits) for k, v in m.state_dict().items()}
    return before, compress(tiny_voice, EVERYTHING)


def test_every_group_compresses_and_the_voice_speaks(tiny_voice, teacher_and_student) -> None:  # noqa: ANN001
    before, student = teacher_and_student
    assert isinstance(student, Voice) and student.gpt is not tiny_voice.gpt
    for group in MODULE_GROUPS:
        module = student.module(group)
        teacher_module = tiny_voice.module(group)
        n_student = sum(p.numel() for p in module.parameters())
        assert n_student < sum(p.numel() for p in teacher_module.parameters()), group
        quantized = [m for m in module.modules() if has_fake_quant(m) or has_fake_quant(m, "in_proj_weight")]
        assert quantized, group
    assert student.gpt.config.n_layer == 2 and student.sovits.config.n_flows == 2
    logits, wav = _synthesize(student)
    t_logits, t_wav = _synthesize(tiny_voice)
    assert logits.shape == t_logits.shape and wav.shape == t_wav.shape
    assert torch.isfinite(wav).all() and torch.isfinite(logits).all()
    # the teacher is untouched, and shares no storage with the student
    after = {k: v for m in (tiny_voice.gpt, tiny_voice.sovits) for k, v in m.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    teacher_ptrs = {p.data_ptr() for p in tiny_voice.sovits.parameters()}
    assert not teacher_ptrs & {p.data_ptr() for p in student.sovits.parameters()}


def test_same_plan_twice_gives_identical_models(tiny_voice, teacher_and_student) -> None:  # noqa: ANN001
    plan = CompressionPlan.from_json(EVERYTHING.to_json())  # the same plan after a JSON round trip
    a = teacher_and_student[1]
    b = compress(tiny_voice, plan)
    for x, y in ((a.gpt, b.gpt), (a.sovits, b.sovits)):
        sa, sb = x.state_dict(), y.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.sovits.config == b.sovits.config
    for group in ("gpt", "dec"):
        model_a = a.gpt if group == "gpt" else a.sovits
        model_b = b.gpt if group == "gpt" else b.sovits
        assert torch.equal(run_group(model_a, group), run_group(model_b, group))


def test_identity_plan_returns_an_equal_copy(tiny_gpt) -> None:  # noqa: ANN001
    copy = compress(tiny_gpt, CompressionPlan())
    assert copy is not tiny_gpt and copy.config == tiny_gpt.config
    assert torch.equal(run_group(copy, "gpt"), run_group(tiny_gpt, "gpt"))


def test_bare_model_takes_its_own_groups_only(tiny_sovits) -> None:  # noqa: ANN001
    plan = seed_recipe()
    sovits = compress(tiny_sovits, plan)  # the plan's gpt entry does not apply to a SoVITS
    assert type(sovits) is type(tiny_sovits)
    assert sovits.config.dec_channels is not None
    with pytest.raises(ConfigError, match=r"unknown module groups \['vocoder'\]"):
        compress(tiny_sovits, CompressionPlan({"vocoder": GroupPlan()}))


def test_validate_plan_reports_every_problem(tiny_voice) -> None:  # noqa: ANN001
    plan = CompressionPlan(
        {
            "dec": GroupPlan(prune=PruneConfig(layers={"ups.3": 0.3})),
            "ref_enc": GroupPlan(prune=PruneConfig(depth_ratio=0.2)),
        }
    )
    with pytest.raises(ConfigError) as info:
        validate_plan(tiny_voice, plan)
    message = str(info.value)
    assert "ups.3 at ratio 0.30 keeps 6 of 8 channels" in message
    assert "ref_enc has no layers to drop" in message
    validate_plan(tiny_voice, seed_recipe())


def test_data_driven_importance_on_voice_calibration(tiny_voice) -> None:  # noqa: ANN001
    gen = torch.Generator().manual_seed(3)
    examples = [
        CalibrationExample(
            phones=torch.randint(1, 300, (1, 7), generator=gen),
            bert=torch.randn(1, 1024, 7, generator=gen),
            codes=torch.randint(0, 1024, (1, 1, 5), generator=gen),
            text=torch.randint(1, 300, (1, 5), generator=gen),
            refer=torch.rand(1, 1025, 16, generator=gen),
        )
        for _ in range(2)
    ]
    calibration = voice_calibration(tiny_voice, examples)
    assert all(len(calibration[g]) == 2 for g in MODULE_GROUPS)
    for group in MODULE_GROUPS:  # every group's batches run its module and give a finite loss
        module = tiny_voice.module(group)
        assert all(torch.isfinite(batch(module)).all() for batch in calibration[group])
    plan = CompressionPlan(
        {
            "gpt": GroupPlan(prune=PruneConfig(0.25, importance="taylor")),
            "flow": GroupPlan(prune=PruneConfig(0.25, importance="activation")),
        }
    )
    student = compress(tiny_voice, plan, calibration)
    l1 = compress(tiny_voice.gpt, CompressionPlan({"gpt": GroupPlan(prune=PruneConfig(0.25))}))
    assert student.gpt.config == l1.config  # same shapes ...
    l1_state = l1.state_dict()
    assert any(not torch.equal(v, l1_state[k]) for k, v in student.gpt.state_dict().items())  # others kept
    assert student.sovits.config.flow_hidden == (72,) * 4  # 96 - 24
