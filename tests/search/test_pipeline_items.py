"""Which experiment-folder items the fine-tune trains on and which it evaluates on."""

from __future__ import annotations

from autocompress.search.pipeline import choose_items

CODED = [f"a{i}.wav" for i in range(6)]


def test_held_out_items_evaluate_and_never_train():
    train, evaluate = choose_items(CODED, ["a1.wav", "a4.wav", "no-codes.wav"], eval_items=8)
    assert evaluate == ["a1.wav", "a4.wav"] and train == ["a0.wav", "a2.wav", "a3.wav", "a5.wav"]
    train, evaluate = choose_items(CODED, ["a1.wav", "a4.wav"], eval_items=1)
    assert evaluate == ["a1.wav"] and "a4.wav" not in train  # held out beyond eval_items: still held out


def test_a_split_that_holds_out_every_coded_item_still_trains_on_one():
    """Only the held-out items had codes: nothing to train on, and the fine-tune crashed in
    random.randrange(0) with a traceback."""
    train, evaluate = choose_items(["a1.wav", "a4.wav"], ["a1.wav", "a4.wav"], eval_items=8)
    assert train == ["a1.wav"] and evaluate == ["a4.wav"]


def test_with_nothing_held_out_the_last_item_evaluates():
    train, evaluate = choose_items(CODED, [], eval_items=8)
    assert evaluate == ["a5.wav"] and train == CODED[:-1]
