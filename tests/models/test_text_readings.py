"""The English front end on forms a user types that used to read wrongly: counts before
describing words, dates without a year, race times, numbered roads and models, ranges, codes."""

from __future__ import annotations

import pytest

from autocompress.models.gpt_sovits.text import english_to_phones, normalize_english


@pytest.mark.parametrize(
    "text, normalised",
    [
        # a number before describing words and a plural counts it; a year names it
        ("The model has 1024 hidden units.", "The model has one thousand twenty four hidden units ."),
        ("We trained 2048 small models.", "We trained two thousand forty eight small models ."),
        ("The 2024 Olympics were in Paris.", "The twenty twenty four Olympics were in Paris ."),
        ("the 2024 presidential candidates", "the twenty twenty four presidential candidates"),
        ("2020 changed things", "twenty twenty changed things"),
        # a month and day without a year; fractions and ratings stay what they are
        ("Christmas falls on 12/25 this year.", "Christmas falls on December twenty fifth this year ."),
        ("It moved to 3/15, due 1/5.", "It moved to March fifteenth , due January fifth ."),
        ("It ran 1/1 to 3/31.", "It ran January first to March thirty first ."),
        ("Add 3/4 cup or 1/16 inch, a 1/24 scale.",
         "Add three quarters cup or one sixteenth inch , a one twenty fourth scale ."),
        ("He scored 98/100, rate it 4.5/5 stars, 10/10.",
         "He scored ninety eight out of one hundred , rate it four point five out of five stars , ten out of ten ."),
        ("a 50/50 chance", "a fifty fifty chance"),
        # times taken
        ("She ran it in 3:25:30.", "She ran it in three hours twenty five minutes thirty seconds ."),
        ("His 5K time is 25:30, the video 1:00:00.",
         "His five K time is twenty five minutes thirty seconds , the video one hour ."),
        ("The lap record is 1:23.456.", "The lap record is one minute twenty three point four five six seconds ."),
        ("a 1:100 scale at 7:45 am", "a one to one hundred scale at seven forty five A-M"),
    ],
)
def test_counts_dates_and_times_taken_are_read(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("Take Hwy. 101 or Rte. 66.", "Take highway one oh one or route sixty six ."),
        ("I bought an RTX 3060 and a GTX 1080.", "I bought an RTX thirty sixty and a GTX ten eighty ."),
        ("Flight UA 920 departs from Room 204.", "Flight UA nine twenty departs from Room two oh four ."),
        ("The Boeing 747, the F-150 and I-405.", "The Boeing seven forty seven , the F one fifty and I four oh five ."),
        ("He lives at 221B Baker Street.", "He lives at two twenty one B Baker Street ."),
        ("Send it to 350 Fifth Ave., New York, NY 10118.",
         "Send it to three fifty Fifth avenue , New York , NY one zero one one eight ."),
        ("The zip code is 90210, PIN 1234, 2FA code 482913.",
         "The zip code is nine zero two one zero , PIN one two three four , two FA code four eight two nine one three ."),
        # counts and money stay cardinals
        ("NASA 500 engineers paid USD 250.", "NASA five hundred engineers paid two hundred fifty dollars ."),
        ("A 120 page book", "A one hundred twenty page book"),
    ],
)
def test_numbers_that_name_roads_rooms_and_models_are_read_in_pairs(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("We are open Monday-Friday.", "We are open Monday to Friday ."),
        ("Open Mon.-Fri. from 9, Jan-Mar.", "Open Monday to Friday from nine , January to March ."),
        ("The sale runs Nov. 24-27.", "The sale runs November twenty fourth to twenty seventh ."),
        ("Expect 10-20 people, 5-10% or $10-20.",
         "Expect ten to twenty people , five to ten percent or ten dollars to twenty ."),
        ("Open 9am-5pm or 9:00-17:00.", "Open nine A-M to five P-M or nine o'clock to seventeen o'clock ."),
        # a score, a chain, a sum and a phone number keep their dashes
        ("We won 21-14, they lost 3-4.", "We won twenty one - fourteen , they lost three - four ."),
        ("3-2-1, 10-2=8, call 1-800-555-1234", "three - two - one , ten - two equals eight , call one , eight zero"
         " zero , five five five , one two three four"),
        ("It's 12-25-2023.", "It's December twenty fifth , twenty twenty three ."),
    ],
)
def test_ranges_are_read_with_to(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("TL;DR: it works, tl;dr", "T-L-D-R , it works , T-L-D-R"),
        ("Update to v2.1 now.", "Update to version two point one now ."),
        ("The app has 10k users, 1.2M downloads, 5k+ stars.",
         "The app has ten thousand users , one point two million downloads , five thousand plus stars ."),
        ("His best 5K time", "His best five K time"),
        ("Add 2 tbsp, 1/4 tsp and 500g of flour on a 5g network.",
         "Add two tablespoons , one quarter teaspoon and five hundred grams of flour on a five g network ."),
        ("Check out github.com/openai now.", "Check out github dot com slash openai now ."),
        ("It's 2 x 4 lumber and 3 x 5 = 15.", "It's two by four lumber and three times five equals fifteen ."),
    ],
)
def test_initials_versions_scales_units_and_bare_addresses_are_read(text, normalised):
    assert normalize_english(text) == normalised


def test_spelled_initials_give_letter_names():
    assert english_to_phones("TL;DR") == "T IY1 EH1 L D IY1 AA1 R".split()
