"""Pruning a v2Pro-shaped SoVITS (gin 1024, a style projected to MRTE's width): zeroing the removed
channels in the teacher gives the pruned model's output, as for v2."""

from __future__ import annotations

import pytest
from compress_helpers import randomize_, run_group
from test_prune import _plain_copy, _zero_removed_

from autocompress.compress import PruneConfig, prune_state
from autocompress.compress._build import build_model
from autocompress.models.gpt_sovits.config import sovits_tiny
from autocompress.models.gpt_sovits.sovits import SynthesizerTrn


@pytest.fixture(scope="module")
def pro_sovits() -> SynthesizerTrn:
    cfg = sovits_tiny().replace(version="v2Pro", gin_channels=1024, mrte_hidden=64, n_flows=2)
    return randomize_(SynthesizerTrn(cfg, include_enc_q=False), seed=3)


@pytest.mark.parametrize("group", ["enc_p", "flow", "dec", "ref_enc"])
def test_pro_groups_prune_to_the_zeroed_teacher(pro_sovits: SynthesizerTrn, group: str) -> None:
    result = prune_state(pro_sovits.config, pro_sovits.state_dict(), group, PruneConfig(0.3))
    assert result.kept_channels
    reference = _plain_copy(pro_sovits)
    _zero_removed_(reference, group, result.kept_channels)
    got, want = run_group(build_model(result.config, result.state), group), run_group(reference, group)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


@pytest.mark.parametrize(("group", "members"), [("ref_enc", ("ref_enc", "sv_emb", "prelu")), ("enc_p", ("enc_p", "ge_to512"))])
def test_pro_group_parameter_counts_include_its_top_level_layers(
    pro_sovits: SynthesizerTrn, group: str, members: tuple[str, ...]
) -> None:
    result = prune_state(pro_sovits.config, pro_sovits.state_dict(), group, PruneConfig(0.3))
    pruned = build_model(result.config, result.state)

    def count(model: SynthesizerTrn) -> int:
        return sum(p.numel() for m in members for p in getattr(model, m).parameters())

    assert (result.params_before, result.params_after) == (count(pro_sovits), count(pruned))
    # the speaker-vector layers are untouched, so the group lost less than its style encoder alone
    own = sum(p.numel() for p in getattr(pro_sovits, group).parameters())
    lost = own - sum(p.numel() for p in getattr(pruned, group).parameters())
    assert result.removed_fraction == pytest.approx(lost / count(pro_sovits))
