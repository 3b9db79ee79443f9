"""Which utterance prompts a voice's synthesis in the search and its bundles."""

from __future__ import annotations

import torch


def test_the_prompt_is_the_named_item_else_one_upstream_would_accept():
    from autocompress.search.distill import VoiceItem
    from autocompress.search.pipeline import _reference

    def item(name: str, seconds: float) -> VoiceItem:
        return VoiceItem(name, torch.zeros(4, dtype=torch.long), torch.zeros(1024, 4),
                         torch.zeros(int(seconds * 25), dtype=torch.long), torch.zeros(1, 704, 10))

    items = [item("short", 1.5), item("long", 12.0), item("fits", 4.0), item("fits2", 6.0)]
    assert _reference(items, "long").name == "long"  # the user's (or the demo's) choice
    assert _reference(items, "").name == "fits"  # upstream refuses prompts under 3 s or over 10 s
    assert _reference(items, "missing").name == "fits"
    assert _reference(items[:2], "").name == "short"  # none fits: the first
