"""The English front end on chat shorthand ("thx", "pls"), sounds written without a vowel
("Grrr", "Pfft"), "name(s)", list letters ("(a)"), an amount of money before the noun it
describes after "the", "<" and ">" that compare, and a hashtag that starts with a year. Each
used to read wrong: spelled letter by letter, "name s", the article "uh", "dollars bill", a
comparison dropped as a heart, "two thousand twenty four Goals"."""

from __future__ import annotations

import pytest

from autocompress.models.gpt_sovits.text import english_to_phones, english_to_word_phones, normalize_english

READINGS = [
    # chat shorthand is the words it stands for; "MSG" in capitals stays an initialism
    ("Thx for the msg, pls call.", "thanks for the message , please call ."),
    ("plz confirm my appt tmrw", "please confirm my appointment tomorrow"),
    ("approx 5 km", "approximately five kilometers"),
    ("No MSG added.", "No MSG added ."),
    # a plural written with "(s)"
    ("Enter the name(s) and item(s).", "Enter the names and items ."),
    ("Add the box(es) here", "Add the boxes here"),
    # a letter alone in brackets, or before ")" in a list, is the letter (see the phones test)
    ("(a) apples (b) bananas", "A- apples , b , bananas"),
    ("a) apples b) bears", "A- apples b bears"),
    ("Section 5(a) applies.", "Section five A- applies ."),
    ("(I want a) cookie", "I want a cookie"),
    # an amount of money between a determiner and its noun names the currency in the singular
    ("the $1.2 trillion bill", "the one point two trillion dollar bill"),
    ("Pay the $20 fee.", "Pay the twenty dollar fee ."),
    ("the $20 you owe me", "the twenty dollars you owe me"),
    ("the $5 million raised", "the five million dollars raised"),
    ("the $5 million is gone", "the five million dollars is gone"),
    ("Give me the $5 back.", "Give me the five dollars back ."),
    # "<" and ">" that compare are read; a heart is not
    ("x <3 y", "x less than three y"),
    ("(p < 0.05)", "p less than zero point zero five"),
    ("a < b and c > d", "a less than b and c greater than d"),
    ("<10% of users wait >5 min", "less than ten percent of users wait greater than five minutes"),
    ("score >= 90 and x ≤ 5", "score greater than or equal to ninety and x less than or equal to five"),
    ("I <3 you", "I you"),
    ("love u <3", "love u"),
    ("Love you 3000 <3", "Love you three thousand"),
    # a hashtag that starts with a year reads the year; a count stays a count
    ("My #2024Goals list", "My twenty twenty four Goals list"),
    ("Join #100DaysOfCode", "Join one hundred Days Of Code"),
    # letters run into a number are read apart
    ("Use SAVE20 at checkout", "Use SAVE twenty at checkout"),
]


@pytest.mark.parametrize(("text", "expected"), READINGS)
def test_readings(text: str, expected: str) -> None:
    assert normalize_english(text) == expected


@pytest.mark.parametrize(
    ("written", "phones"),
    [
        ("Grrr", ["G", "ER1"]), ("Grr", ["G", "ER1"]), ("Brrr", ["B", "ER1"]), ("Pfft", ["P", "F", "T"]),
        ("Psst", ["P", "S", "T"]), ("Zzz", ["Z"]), ("Zzzzz", ["Z"]), ("tsk", ["T", "IH1", "S", "K"]),
        ("Hmph", ["HH", "M", "F"]), ("Hmm", ["HH", "M"]), ("Hmmm", ["HH", "M"]), ("Shh", ["SH"]),
    ],
)
def test_sounds_without_a_vowel_are_read_as_sounds(written: str, phones: list[str]) -> None:
    assert english_to_phones(written) == phones


def test_an_initialism_without_vowels_stays_spelled() -> None:
    assert english_to_phones("PST") == english_to_phones("P-S-T")


def test_a_list_letter_is_its_name_not_the_article() -> None:
    words = english_to_word_phones("(a) apples")
    assert words[0] == ["EY1"]
