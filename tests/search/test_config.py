"""Checking a search's inputs before anything is loaded."""

from __future__ import annotations

import pytest

from autocompress.exceptions import ConfigError
from autocompress.search.config import MAX_SEED, SearchConfig, resolve


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_the_sampler_cannot_take_is_a_usage_error(seed):
    with pytest.raises(ConfigError, match=rf"^--seed must be 0 to {MAX_SEED}, got {seed}$"):
        resolve(SearchConfig(target="rtx3060", seed=seed))
