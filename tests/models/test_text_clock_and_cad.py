"""A clock time with seconds at a sentence's end, and "CAD" after a number before a noun."""

from __future__ import annotations

import pytest

from autocompress.models.gpt_sovits.text import normalize_english


@pytest.mark.parametrize("text", ["The alarm went off at 10:30:15.", "The alarm went off at 10:30:15. Then quiet."])
def test_a_clock_time_with_seconds_ending_a_sentence_is_a_clock_time(text: str) -> None:
    """Before the full stop it was read as a time taken ("ten hours thirty minutes ...")."""
    out = normalize_english(text)
    assert "ten thirty and fifteen seconds ." in out and "hours" not in out


def test_a_time_taken_with_fractional_seconds_stays_a_time_taken() -> None:
    assert "three point five seconds" in normalize_english("Lap at 1:02:03.5 flat.")


@pytest.mark.parametrize("text", ["I made 3 CAD models.", "We bought 10 CAD licenses today."])
def test_cad_after_a_number_before_a_noun_is_the_acronym(text: str) -> None:
    """It read "three Canadian dollars models"."""
    assert "dollar" not in normalize_english(text)


@pytest.mark.parametrize(
    "text, money",
    [("It costs 50 CAD.", "fifty Canadian dollars"), ("It costs 50 CAD per month.", "fifty Canadian dollars per"),
     ("Pay 49.99 CAD today.", "forty nine Canadian dollars ninety nine cents"),
     ("It is 1,200 CAD tops.", "one thousand two hundred Canadian dollars")],
)
def test_cad_after_an_amount_is_still_money(text: str, money: str) -> None:
    assert money in normalize_english(text)
