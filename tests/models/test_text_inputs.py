"""The English front end on text a user types: counts after "May", initials, web and mail
addresses, phone numbers, short units and other everyday forms."""

from __future__ import annotations

import pytest

from autocompress.models.gpt_sovits.text import english_to_phones, english_to_word_phones, normalize_english, split_phones


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("May 5 people join the club?", "May five people join the club ?"),
        ("In May 5 people left.", "In May five people left ."),
        ("In March 3 teams qualified.", "In March three teams qualified ."),
        ("May 5 children play.", "May five children play ."),
        # a day stays a day: no plural noun after it, a verb in "s", or another month
        ("On May 5 we met.", "On May fifth we met ."),
        ("May 5 falls on a Sunday.", "May fifth falls on a Sunday ."),
        ("May 5, 2024 was fine.", "May fifth , twenty twenty four was fine ."),
        ("July 4 fireworks are loud.", "July fourth fireworks are loud ."),
    ],
)
def test_a_number_after_may_counts_a_plural_noun(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("John F. Kennedy was president.", "John F Kennedy was president ."),
        ("I met J. K. Rowling and J.R.R. Tolkien.", "I met J-K Rowling and J-R-R Tolkien ."),
        ("H. G. Wells wrote it.", "H-G Wells wrote it ."),
        ("He joined the U.S. Army.", "He joined the U-S Army ."),
        # a letter that ends a sentence keeps its stop
        ("The letter F. You know it.", "The letter F . You know it ."),
        ("I got an A. Great job.", "I got an A- . Great job ."),
        ("I live in the U.S. Now I am happy.", "I live in the U-S . Now I am happy ."),
    ],
)
def test_initials_before_a_name_lose_their_stops(text, normalised):
    assert normalize_english(text) == normalised


def test_a_name_with_initials_is_spoken_as_one_sentence():
    phones = english_to_phones("John F. Kennedy was president.")
    assert phones.count(".") == 1 and len(split_phones(phones)) == 1
    assert english_to_phones("J. K. Rowling")[:5] == ["JH", "EY1", "K", "EY1", "R"]  # letter names


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("Meet at 10.30pm or 9.05 a.m. today.", "Meet at ten thirty P-M or nine oh five A-M today ."),
        ("Order no. 12 and No. 5.", "Order number twelve and number five ."),
        ("Wait 5 min, 1 sec, 3 hrs and 1 hr for 2 mi.",
         "Wait five minutes , one second , three hours and one hour for two miles ."),
        ("Two cats @ home.", "Two cats at home ."),
        ("The mid-1990s.", "The mid nineteen nineties ."),
        ("Wait . . . what?", "Wait … what ?"),
        ("Open Mon. to Fri. and on Sat. The shop is small.",
         "Open Monday to Friday and on Saturday . The shop is small ."),
        ("See p. 5, pp. 10 and vol. 3, fig. 2.", "See page five , pages ten and volume three , figure two ."),
    ],
)
def test_everyday_times_counts_units_and_marks(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("Call +44 20 7946 0958 now.", "Call four four , two zero , seven nine four six , zero nine five eight now ."),
        ("Call 555 123 4567 now.", "Call five five five , one two three , four five six seven now ."),
    ],
)
def test_international_and_space_separated_phone_numbers_are_read_digit_by_digit(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("Visit https://www.example.com/path?q=1 today.", "Visit www dot example dot com slash path today ."),
        ("See http://github.com/user/repo.", "See github dot com slash user slash repo ."),
        ("Go to www.BBC.co.uk, then stop.", "Go to www dot BBC dot co dot uk , then stop ."),
        ("Mail a.b@c.io or first.m.last@mail.example.org.",
         "Mail a dot b at c dot io or first dot m dot last at mail dot example dot org ."),
    ],
)
def test_web_and_mail_addresses_are_read_without_false_stops_or_pauses(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    ("text", "index", "phones"),
    [
        ("Chester A. Arthur was here.", 1, ["EY1"]),  # an initial: the letter, not "uh"
        ("Plan A is good.", 1, ["EY1"]),
        ("I got an A.", 3, ["EY1"]),
        ("Is it A or B?", 2, ["EY1"]),
        ("A dog barked.", 0, ["AH0"]),  # the article starts a sentence
        ("I read A Tale of Two Cities.", 2, ["AH0"]),  # title case: the article
        ("THIS IS A TEST.", 2, ["AH0"]),  # all capitals: the article
        ("an A-list star", 1, ["EY1", "L", "IH1", "S", "T"]),
    ],
)
def test_a_capital_a_inside_a_sentence_is_the_letter(text, index, phones):
    assert english_to_word_phones(text)[index] == phones
