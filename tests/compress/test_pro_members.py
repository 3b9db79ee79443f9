"""A v2Pro SoVITS's top-level layers (``sv_emb``, ``prelu``, ``ge_to512``) belong to the group whose
ONNX graph runs them: a plan quantizes, casts, fine-tunes and projects them with that group."""

from __future__ import annotations

import pytest
import torch
from compress_helpers import randomize_

from autocompress.compress import CompressionPlan, GroupPlan, QuantConfig, compress, lower_precision_
from autocompress.compress.fake_quant import has_fake_quant
from autocompress.compress.lowp import Int8WeightOnlyLinear
from autocompress.models.gpt_sovits.config import gpt_tiny, sovits_tiny
from autocompress.models.gpt_sovits.gpt import Text2SemanticGPT
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.score.voice_cost import precisions_from_plan, project_voice_memory
from autocompress.search.distill import trainable_parameters_
from autocompress.targets import load_target


@pytest.fixture(scope="module")
def pro_voice() -> Voice:
    cfg = sovits_tiny().replace(
        version="v2Pro", gin_channels=1024, inter_channels=32, hidden_channels=32, filter_channels=64, n_layers=1,
        mrte_hidden=32, mrte_heads=2, style_hidden=32, upsample_initial_channel=32, n_flows=1,
        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3, 5),),
    )  # fmt: skip
    gpt = Text2SemanticGPT(gpt_tiny().replace(hidden_dim=32, n_head=2, n_layer=1, ffn_dim=64))
    return Voice(gpt=randomize_(gpt, seed=1), sovits=randomize_(SynthesizerTrn(cfg, include_enc_q=False), seed=2))


def _plan(**groups: QuantConfig) -> CompressionPlan:
    return CompressionPlan(name="t", groups={g: GroupPlan(quant=q) for g, q in groups.items()})


def _style(sovits: SynthesizerTrn) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    spec = torch.rand(1, sovits.config.ref_bins, 30, generator=gen)
    sv = torch.randn(1, sovits.config.sv_dim, generator=gen)
    with torch.no_grad():
        ge = sovits.style(spec, sv)
        return torch.cat([ge.flatten(), sovits._text_style(ge).flatten()])


def test_fake_quantization_reaches_the_pro_layers_of_a_group(pro_voice: Voice) -> None:
    student = compress(pro_voice, _plan(ref_enc=QuantConfig(weights="int4"), enc_p=QuantConfig(weights="int8")))
    s = student.sovits
    assert has_fake_quant(s.sv_emb) and has_fake_quant(s.ge_to512) and has_fake_quant(s.ref_enc.fc.fc)
    assert not has_fake_quant(pro_voice.sovits.sv_emb)  # the teacher is untouched
    w = s.sv_emb.weight.detach()  # the simulated weight: at most 16 levels per block of 32 inputs of a row
    assert max(len(torch.unique(row[i : i + 32])) for row in w for i in range(0, w.shape[1], 32)) <= 16
    assert not torch.equal(_style(s), _style(pro_voice.sovits))

    flow_only = compress(pro_voice, _plan(flow=QuantConfig(weights="int8")))
    assert not has_fake_quant(flow_only.sovits.sv_emb) and not has_fake_quant(flow_only.sovits.ge_to512)


def test_fine_tuning_a_group_trains_its_pro_layers(pro_voice: Voice) -> None:
    student = compress(pro_voice, _plan(ref_enc=QuantConfig(weights="int8")))
    params = {id(p) for p in trainable_parameters_(student, ["ref_enc"])}
    s = student.sovits
    assert {id(p) for p in (*s.sv_emb.parameters(), *s.prelu.parameters())} <= params
    assert not {id(p) for p in s.ge_to512.parameters()} & params
    assert {id(p) for p in s.ge_to512.parameters()} <= {id(p) for p in trainable_parameters_(student, ["enc_p"])}


def test_lowered_pro_layers_run_in_their_groups_precision(pro_voice: Voice) -> None:
    plan = _plan(ref_enc=QuantConfig(weights="int8"), enc_p=QuantConfig(weights="fp16", activations="fp16"))
    student = lower_precision_(compress(pro_voice, plan), plan)
    s = student.sovits
    assert isinstance(s.sv_emb, Int8WeightOnlyLinear)
    assert s.ge_to512.weight.dtype == torch.float16 and s.prelu.weight.dtype == torch.float32
    got, want = _style(s), _style(pro_voice.sovits)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert float((got - want).norm() / want.norm()) < 0.05


def test_projection_counts_the_pro_layers_at_their_groups_bits(pro_voice: Voice) -> None:
    plan = _plan(ref_enc=QuantConfig(weights="int4", op_weights={"linear": "int8"}), enc_p=QuantConfig(weights="int8"))
    bits, _ = precisions_from_plan(plan)  # the linears are the int8 part of an int4 group
    assert bits["sv_emb"] == 4 and bits["sv_emb@matmul"] == 8 and bits["ge_to512"] == 8
    target = load_target("rtx3060")
    fp = project_voice_memory(pro_voice, target).weight_bytes
    q = project_voice_memory(pro_voice, target, *precisions_from_plan(_plan(ref_enc=QuantConfig(weights="int4"))))
    sv_params = sum(p.numel() for p in pro_voice.sovits.sv_emb.parameters())
    assert fp - q.weight_bytes > 0.7 * sv_params * 1.5  # fp16 -> 4 bits on the 20480-wide input alone


def test_stripping_keeps_folded_weights_as_parameters_and_the_projection_whole(pro_voice: Voice) -> None:
    """Weight-normed layers fold into one weight when fake quantization is stripped; torch
    would leave it a buffer, which the memory projection (parameters) would not count."""
    from autocompress.compress import strip_fake_quant_
    from autocompress.search.plans import baseline_plan

    plan = baseline_plan("teacher_fp16")
    student = compress(pro_voice, plan)
    for p in (*student.gpt.parameters(), *student.sovits.parameters()):
        p.requires_grad_(False)  # as the pipeline freezes it before stripping
    strip_fake_quant_(student.gpt)
    strip_fake_quant_(student.sovits)
    conv = student.sovits.dec.ups[0]
    assert "weight" in conv._parameters and not conv.weight.requires_grad
    teacher_params = sum(p.numel() for p in pro_voice.sovits.dec.parameters())
    folded = sum(p.numel() for p in student.sovits.dec.parameters())
    assert folded < teacher_params  # weight norm's g and v fold into one weight, none lost to buffers
    assert folded == sum(m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
                         for m in student.sovits.dec.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)))
    target = load_target("rtx3060")
    precisions = precisions_from_plan(plan)
    want = project_voice_memory(pro_voice, target, *precisions).weight_bytes
    assert project_voice_memory(student, target, *precisions).weight_bytes == pytest.approx(want, rel=1e-3)
