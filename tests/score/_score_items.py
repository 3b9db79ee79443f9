"""Random utterances shaped like a fidelity set's items, for scoring tiny voices."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Item:
    phones: torch.Tensor  # [N] phone ids
    bert: torch.Tensor  # [1024, N]
    codes: torch.Tensor  # [T] semantic codes
    refer: torch.Tensor  # [1, 1025, frames] reference spectrogram


def item(seed: int, n_phones: int, n_codes: int) -> Item:
    """A seeded random item with ``n_phones`` phones and ``n_codes`` codes."""
    g = torch.Generator().manual_seed(seed)
    return Item(
        phones=torch.randint(1, 300, (n_phones,), generator=g),
        bert=torch.randn(1024, n_phones, generator=g) * 0.1,
        codes=torch.randint(0, 1024, (n_codes,), generator=g),
        refer=torch.rand(1, 1025, 40, generator=g),
    )
