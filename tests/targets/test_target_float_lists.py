"""A target's deployable floats are the ones a bundle can hold: the export writes bf16 as fp16."""

from __future__ import annotations

import pytest

from autocompress.targets import list_targets, load_target


@pytest.mark.parametrize("name", list_targets())
def test_bf16_is_listed_only_where_the_fp16_it_ships_as_runs(name: str) -> None:
    """The cpu target listed bf16 matmul without fp16: ``autocompress targets`` showed a float
    no bundle for it holds (a bf16 plan ships there as fp32)."""
    target = load_target(name)
    for kind, precisions in target.deployable.items():
        assert "bf16" not in precisions or "fp16" in precisions, f"{name}: {kind} lists bf16 without fp16"
