"""A search on a GPU (``--device cuda``) without a GPU: where tensors live.

Two stand-ins for a CUDA device: torch's fake tensors (``FakeTensorMode`` places tensors on
``cuda`` without a GPU, computes nothing and raises on a CPU tensor meeting a CUDA one, as a
real GPU does), and the ``meta`` device for code that loads files.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.utils.stateless import _reparametrize_module

from autocompress.compress._channels import top_channels
from autocompress.compress._state import StateEditor
from autocompress.compress.calibration import CalibrationExample, voice_calibration
from autocompress.compress.importance import channel_scores
from autocompress.compress.prune import structure_of
from autocompress.models.gpt_sovits import ExperimentFolder, load_gpt, load_sovits
from autocompress.models.gpt_sovits.voice import Voice
from autocompress.search import cache as cache_module
from autocompress.search import pipeline
from autocompress.search.cache import TeacherCache
from autocompress.search.distill import VoiceItem, load_items


@pytest.fixture(scope="module")
def teacher(micro_voice) -> Voice:  # noqa: ANN001
    sovits = load_sovits(micro_voice["sovits"])
    sovits.drop_enc_q_()
    return Voice(load_gpt(micro_voice["gpt"]).eval(), sovits.eval())


def _on(item: VoiceItem, device: str) -> VoiceItem:
    return VoiceItem(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in item.__dict__.items()})


class _Stop(Exception):
    pass


def test_the_demo_prompt_is_coded_by_a_model_beside_its_stand_in_features(micro_voice, tmp_path, monkeypatch):
    """The demo voice's prompt codes come from stand-in features made on the CPU: with the
    teacher on the GPU, the search failed before its first trial (a CPU input to a CUDA conv)."""
    from autocompress.search.config import SearchConfig, resolve

    resolved = resolve(SearchConfig(
        target="rtx3060", device="cpu", gpt=micro_voice["gpt"], sovits=micro_voice["sovits"], data=micro_voice["data"],
        space=micro_voice["space"], storage=f"sqlite:///{tmp_path}/s.db", artifacts=tmp_path / "art", export=False,
    ))  # fmt: skip
    on_device = dataclasses.replace(resolved, device="meta", voice=dataclasses.replace(resolved.voice, standin_version=1))
    real = pipeline.demo_prompt_codes
    seen = []

    def spy(sovits, wav, version):  # noqa: ANN001, ANN202
        seen.append((next(sovits.parameters()).device.type, wav.device.type))
        seen.append(real(sovits, wav, version).dim())
        raise _Stop

    monkeypatch.setattr(pipeline, "demo_prompt_codes", spy)
    monkeypatch.setattr(pipeline, "_closed", lambda prompt, version: prompt)  # reads a phone id: no data on meta
    with pytest.raises(_Stop):
        pipeline.VoiceTrialRunner.prepare(on_device, tmp_path / "cache.pt")
    assert seen == [("cpu", "cpu"), 1]


def test_a_teacher_cache_read_again_for_a_gpu_keeps_its_speech_on_the_cpu(teacher, micro_voice, tmp_path, monkeypatch):
    """The second run of a study on a GPU (a resume) read the cache onto the GPU and crashed
    turning the teacher's speech into numpy; its items must follow the device, its speech not."""
    folder = ExperimentFolder(micro_voice["data"], version=teacher.sovits.config.version)
    items = load_items(folder, [n for n in folder.names if folder[n].codes][:3], teacher.sovits.config)
    prompt, evals = items[0], items[1:]
    path = tmp_path / "cache.pt"
    built = TeacherCache.load_or_build(path, teacher, evals, prompt, evals[:1], "key")

    monkeypatch.setattr(cache_module, "_same_items", lambda *a: True)  # meta tensors hold no values to compare
    monkeypatch.setattr(TeacherCache, "build", classmethod(lambda cls, *a, **k: pytest.fail("rebuilt")))
    meta = [_on(i, "meta") for i in evals]
    again = TeacherCache.load_or_build(path, teacher, meta, _on(prompt, "meta"), meta[:1], "key")

    assert again.prompt.codes.device.type == "meta" and again.style.device.type == "meta"
    assert {i.phones.device.type for i in again.targets.items + again.sentences} == {"meta"}
    assert {t.device.type for t in again.targets.gpt_logits} == {"meta"}
    assert {t.z.device.type for t in again.targets.sovits} == {"meta"}
    assert again.speech[0].wav.device.type == "cpu" and torch.equal(again.speech[0].wav, built.speech[0].wav)
    assert again.reference.audios[0].shape == built.reference.audios[0].shape  # numpy, scored on the CPU


@pytest.mark.parametrize("group", ["gpt", "enc_p", "flow", "dec", "ref_enc"])
def test_l1_channel_scores_of_weights_on_a_gpu_are_ranked(teacher, group):
    """Pruning (or a narrower student) of a voice on a GPU failed in every trial: the scores
    were summed into a CPU tensor from the GPU's weights."""
    model = teacher.gpt if group == "gpt" else teacher.sovits
    sets = structure_of(group).prune_sets(model.config)
    real = model.state_dict()
    with FakeTensorMode() as mode:
        state = {k: mode.from_tensor(v).to("cuda") for k, v in real.items()}
        scores = channel_scores("l1", sets, StateEditor(state))
        kept = {s.name: top_channels(scores[s.name], max(s.groups, s.size // 2), s.groups) for s in sets}
    assert sets and all(kept[s.name].numel() == max(s.groups, s.size // 2) for s in sets)
    assert {t.device.type for t in scores.values()} == {"cpu"}


def test_voice_calibration_runs_on_the_teacher_device(teacher):
    """Calibration batches of a teacher on a GPU made their lengths and masks on the CPU."""
    sovits, cfg = teacher.sovits, teacher.sovits.config
    tensors = [*sovits.named_parameters(), *sovits.named_buffers()]
    with FakeTensorMode() as mode:
        def cuda(t: torch.Tensor) -> torch.Tensor:
            return mode.from_tensor(t).to("cuda")

        weights = {k: cuda(v) for k, v in tensors}
        ex = CalibrationExample(
            phones=cuda(torch.ones(1, 10, dtype=torch.long)), bert=cuda(torch.zeros(1, teacher.gpt.config.bert_dim, 10)),
            codes=cuda(torch.ones(1, 1, 12, dtype=torch.long)), text=cuda(torch.ones(1, 5, dtype=torch.long)),
            refer=cuda(torch.rand(1, cfg.spec_channels, 30)),
        )  # fmt: skip
        with _reparametrize_module(sovits, weights):
            batches = voice_calibration(teacher, [ex])
            outputs = [batches[g][0](getattr(sovits, g)) for g in ("ref_enc", "enc_p", "flow", "dec")]
        gpt = _RecordingGPT()  # the GPT's own forward reads its lengths' values: fake tensors hold none
        outputs.append(batches["gpt"][0](gpt))
    assert {t.device.type for t in [*outputs, *gpt.inputs]} == {"cuda"}


class _RecordingGPT:
    """Takes a teacher-forced GPT call, keeps its inputs and answers with logits on their device."""

    def forward_train(self, phones, phones_len, bert, codes, codes_len):  # noqa: ANN001, ANN201
        self.inputs = [phones, phones_len, bert, codes, codes_len]
        return torch.zeros(1, codes.shape[1], 8, device=codes.device), codes % 8


def test_scores_on_a_gpu_are_computed_in_fp32_not_tf32():
    """torch lets cuDNN run fp32 convolutions in TF32 (10 mantissa bits) on Ampere and newer, so
    an RTX 3060's "fp32" teacher and scores were not what an fp32 bundle computes."""
    before = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    with pipeline.exact_fp32(torch.device("cpu")):
        assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
    with pipeline.exact_fp32(torch.device("cuda", 0)):
        assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision) == before
