"""Students: smaller models of the same architecture, initialised from the teacher, loadable by
our loader; uniform ones save in upstream's format and load back."""

from __future__ import annotations

import pytest
import torch
from compress_helpers import randomize_, run_group

from autocompress.compress import (
    CompressionPlan,
    GroupPlan,
    PruneConfig,
    StudentConfig,
    compress,
    make_student,
)
from autocompress.exceptions import ConfigError
from autocompress.models.gpt_sovits import load_gpt, load_sovits, read_sovits, save_gpt, save_sovits
from autocompress.models.gpt_sovits.config import sovits_v2
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn


@pytest.fixture(scope="module")
def upstream_shaped_sovits() -> SynthesizerTrn:
    """A small SoVITS that upstream's own config can express (only its free widths reduced)."""
    config = sovits_v2().replace(
        inter_channels=64, filter_channels=128, n_layers=2, upsample_initial_channel=64,
        resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
    )  # fmt: skip
    assert config.is_upstream_expressible
    return randomize_(SynthesizerTrn(config, include_enc_q=False), seed=7)


def _fp16_rounded(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.half().float() for k, v in model.state_dict().items()}


def test_gpt_student_is_narrower_shallower_and_upstream_saveable(tiny_gpt, tmp_path) -> None:  # noqa: ANN001
    student = make_student(tiny_gpt, "gpt", StudentConfig(width_mult=0.5, depth_mult=0.67))
    c = student.config
    assert (c.hidden_dim, c.n_layer, c.ffn_dim, c.n_head) == (64, 2, 256, 4)
    assert c.is_upstream_expressible
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in tiny_gpt.parameters()) / 2
    path = save_gpt(student, tmp_path / "student.ckpt")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert "autocompress" not in raw["config"]  # upstream's own config describes it
    assert raw["config"]["model"]["hidden_dim"] == 64 and raw["config"]["model"]["n_layer"] == 2
    loaded = load_gpt(path)
    assert loaded.config == c
    for k, v in _fp16_rounded(student).items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_gpt_student_keeps_the_most_important_channels(tiny_gpt) -> None:  # noqa: ANN001
    student = make_student(tiny_gpt, "gpt", StudentConfig(width_mult=0.5))
    teacher_emb = tiny_gpt.ar_audio_embedding.word_embeddings.weight
    student_emb = student.ar_audio_embedding.word_embeddings.weight
    # every student column is a teacher column (selection, not re-initialisation), in order
    distance = [(teacher_emb - student_emb[:, [j]]).abs().sum(0) for j in range(student_emb.shape[1])]
    cols = [int(d.argmin()) for d in distance]
    assert cols == sorted(cols) and len(set(cols)) == 64
    assert torch.equal(teacher_emb[:, cols], student_emb)
    # the student still runs and produces logits of the right shape
    assert run_group(student, "gpt").shape[-1] == tiny_gpt.config.vocab_size


def test_uniform_student_saves_in_upstream_format(upstream_shaped_sovits, tmp_path) -> None:  # noqa: ANN001
    plan = CompressionPlan(
        {
            "dec": GroupPlan(student=StudentConfig(width_mult=0.5, depth_mult=0.5)),
            "enc_p": GroupPlan(student=StudentConfig(width_mult=0.5)),
        }
    )
    student = compress(upstream_shaped_sovits, plan)
    c = student.config
    assert (c.upsample_initial_channel, c.filter_channels) == (32, 64)
    assert c.resblock_kernel_sizes in ((3,), (7,))  # the more important of the two kernels
    assert c.dec_channels is None and c.is_upstream_expressible
    assert "autocompress" not in c.to_upstream()  # the file's hps are upstream's own fields only
    path = save_sovits(student, tmp_path / "student.pth")
    checkpoint = read_sovits(path)
    assert checkpoint.config == c
    for k, v in _fp16_rounded(student).items():
        assert torch.equal(checkpoint.model.state_dict()[k], v), k


def test_non_uniform_student_loads_with_our_loader(tiny_sovits, tmp_path) -> None:  # noqa: ANN001
    plan = CompressionPlan(
        {
            "flow": GroupPlan(student=StudentConfig(width_mult=0.5, depth_mult=0.5)),
            "ref_enc": GroupPlan(student=StudentConfig(width_mult=0.5)),
            "dec": GroupPlan(prune=PruneConfig(layers={"ups.0": 0.25})),
        }
    )
    student = compress(tiny_sovits, plan)
    c = student.config
    assert c.n_flows == 2 and c.flow_hidden == (48, 48) and c.style_hidden == 32
    assert not c.is_upstream_expressible
    assert "autocompress" in c.to_upstream()  # our extra section carries the shape
    loaded = load_sovits(save_sovits(student, tmp_path / "student.pth"))
    assert loaded.config == c
    for k, v in _fp16_rounded(student).items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert run_group(loaded, "flow").shape == run_group(student, "flow").shape


def test_student_limits(tiny_sovits) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="ref_enc students have no depth"):
        compress(tiny_sovits, CompressionPlan({"ref_enc": GroupPlan(student=StudentConfig(depth_mult=0.5))}))
