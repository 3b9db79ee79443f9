"""Which utterance prompts a voice's synthesis in the search and its bundles."""

from __future__ import annotations

import torch


def test_the_prompt_is_the_named_item_else_one_upstream_would_accept(caplog):
    from autocompress.search.distill import VoiceItem
    from autocompress.search.pipeline import _reference

    def item(name: str, seconds: float) -> VoiceItem:
        return VoiceItem(name, torch.zeros(4, dtype=torch.long), torch.zeros(1024, 4),
                         torch.zeros(int(seconds * 25), dtype=torch.long), torch.zeros(1, 704, 10))

    items = [item("short", 1.5), item("long", 12.0), item("fits", 4.0), item("fits2", 6.0)]
    assert _reference(items, "long").name == "long"  # the user's (or the demo's) choice
    assert _reference(items, "").name == "fits"  # upstream refuses prompts under 3 s or over 10 s
    assert _reference(items, "missing").name == "fits"
    assert _reference(items[:2], "").name == "short"  # none fits: the first, with a warning
    assert "no training item is 3 to 10 s long" in caplog.text and "short (1.5 s)" in caplog.text


def test_a_prompt_without_a_closing_mark_gets_one_as_upstream_reads_it():
    from autocompress.models.gpt_sovits.text import phones_to_ids, symbols
    from autocompress.search.distill import VoiceItem
    from autocompress.search.pipeline import _closed

    def item(phones: list[str]) -> VoiceItem:
        ids = torch.tensor(phones_to_ids(phones, "v2"))
        return VoiceItem("p", ids, torch.ones(1024, len(phones)), torch.zeros(80, dtype=torch.long),
                         torch.zeros(1, 704, 10))

    table = symbols("v2")
    open_, closed = item(["HH", "AY1"]), item(["HH", "AY1", "!"])
    fixed = _closed(open_, "v2")
    assert [table[i] for i in fixed.phones] == ["HH", "AY1", "."]
    assert fixed.bert.shape == (1024, 3) and fixed.bert[:, -1].abs().sum() == 0 and fixed.bert[:, :2].eq(1).all()
    assert _closed(closed, "v2") is closed
