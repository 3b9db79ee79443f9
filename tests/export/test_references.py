"""The torch side of an export: a trial's parametrizations are folded, the trial is untouched."""

from __future__ import annotations

import torch
from export_helpers import make_voice
from torch.nn.utils import parametrize

from autocompress.compress import compress
from autocompress.compress.fake_quant import has_fake_quant
from autocompress.compress.plan import CompressionPlan, GroupPlan, PruneConfig, QuantConfig
from autocompress.export import plain_copy


def test_fake_quant_and_weight_norm_are_folded_into_plain_weights() -> None:
    plan = CompressionPlan(
        {
            "gpt": GroupPlan(quant=QuantConfig("int4")),
            "dec": GroupPlan(prune=PruneConfig(0.25), quant=QuantConfig("int4")),
            "flow": GroupPlan(quant=QuantConfig("int8")),
        }
    )
    student = compress(make_voice(), plan)
    assert has_fake_quant(student.gpt.h.layers[0].linear1)
    gpt, sovits = plain_copy(student.gpt, student.sovits)

    plain = [m for m in list(gpt.modules()) + list(sovits.modules()) if parametrize.is_parametrized(m)]
    assert plain == []
    assert sovits.config == student.sovits.config  # the pruned widths come along
    w = gpt.h.layers[0].linear1.weight  # on a 4-bit grid per 32 inputs of a row: at most 16 levels
    assert max(len(torch.unique(row[i : i + 32])) for row in w for i in range(0, w.shape[1], 32)) <= 16
    assert has_fake_quant(student.gpt.h.layers[0].linear1)  # the trial itself is unchanged

    phones, bert, prompt = torch.randint(0, 700, (1, 9)), torch.randn(1, 1024, 9), torch.randint(0, 1024, (1, 6))
    codes, text, refer = torch.randint(0, 1024, (1, 1, 8)), torch.randint(0, 700, (1, 7)), torch.rand(1, 1025, 20)
    with torch.no_grad():
        assert torch.allclose(
            gpt.prefill_logits(phones, bert, prompt), student.gpt.prefill_logits(phones, bert, prompt), atol=1e-5
        )
        want = student.sovits.decode(codes, text, refer, noise_scale=0.0)
        got = sovits.decode(codes, text, refer, noise_scale=0.0)
    assert torch.allclose(got, want, atol=1e-5)
