"""The English front end on working hours written as a falling pair ("work 9-5"), clock times
with seconds after an hour past noon ("the clock read 23:59:59"), "by 2100" as a year, hex colours
("#3e8e41") and long numbers after "#" ("order #12345"), which used to read as a score, a time
taken, a count, "three e eight e forty one" and "twelve thousand ..."."""

from __future__ import annotations

import pytest

from autocompress.models.gpt_sovits.text import english_to_phones, normalize_english

READINGS = [
    # working hours: a falling pair before a job word or after "work" is a range
    ("Work 9-5 daily.", "Work nine to five daily ."),
    ("a 9-5 job", "a nine to five job"),
    ("I am working 9-5 on weekdays.", "I am working nine to five on weekdays ."),
    ("The 7-3 shift starts soon.", "The seven to three shift starts soon ."),
    # ... while scores keep their dash
    ("They won 24-17.", "They won twenty four - seventeen ."),
    ("a 3-2 win", "a three - two win"),
    ("It ended 9-5 in the end.", "It ended nine - five in the end ."),
    # a clock with seconds past noon after a word that reads a clock
    ("The clock read 23:59:59.", "The clock read twenty three fifty nine and fifty nine seconds ."),
    ("It shows 14:05:10 now", "It shows fourteen oh five and ten seconds now"),
    ("Open until 18:30:15.", "Open until eighteen thirty and fifteen seconds ."),
    # ... while times taken stay durations
    ("It took 23:59:59.", "It took twenty three hours fifty nine minutes fifty nine seconds ."),
    ("The timer read 3:25:30.", "The timer read three hours twenty five minutes thirty seconds ."),
    # "by 2100" as a year where what follows starts what happens then
    ("By 2100 sea levels will rise.", "By twenty one hundred sea levels will rise ."),
    ("by 2100, we will know", "by twenty one hundred , we will know"),
    ("It ends by 2100.", "It ends by twenty one hundred ."),
    ("By 2100 the coast moves.", "By twenty one hundred the coast moves ."),
    # ... while amounts and counts stay numbers
    ("Sales rose by 2100.", "Sales rose by two thousand one hundred ."),
    ("Divide it by 2100 people", "Divide it by two thousand one hundred people"),
    # hex colours, character by character, letters by name
    ("Use #3e8e41 here.", "Use three E eight E four one here ."),
    ("#FFF text", "F F F text"),
    ("#abc123", "A- B C one two three"),
    ("Tag it #bad", "Tag it bad"),  # a word, a hashtag
    # numbers after "#": four or more digits one by one
    ("order #12345", "order number one two three four five"),
    ("Call #1 now", "Call number one now"),
    ("#123", "number one hundred twenty three"),
]


@pytest.mark.parametrize(("text", "expected"), READINGS)
def test_leftover_readings(text: str, expected: str) -> None:
    assert normalize_english(text) == expected


def test_hex_colour_letters_are_spoken_as_letter_names() -> None:
    # "A-" is the letter's name, not the article
    assert english_to_phones("#a00")[:1] == ["EY1"]
