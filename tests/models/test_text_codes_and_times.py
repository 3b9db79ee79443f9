"""The English front end on currency codes, feet and inches, far years, military times, decade
ranges, measures before a noun, scientific notation and other forms a user may type into
``autocompress synth --text`` that used to read wrongly ("USD one thousand ... point nine nine",
"five feet eleven in", "zero eight zero zero hours", "the five volts adapter", "three e eight")."""

from __future__ import annotations

import pytest

from autocompress.models.gpt_sovits.text import english_to_phones, normalize_english

CURRENCY_CODES = [
    (
        "It costs USD 1,299.99 today.",
        "It costs one thousand two hundred ninety nine dollars ninety nine cents today .",
    ),
    ("EUR 50 or 50 EUR", "fifty euros or fifty euros"),
    ("GBP 3.50 and JPY 1000", "three pounds fifty pence and one thousand yen"),
    ("Pay 100 GBP or 120 EUR.", "Pay one hundred pounds or one hundred twenty euros ."),
    (
        "CHF 1.05, 1 KRW and CNY 12.50",
        "one Swiss franc five centimes , one won and twelve point five zero yuan",
    ),
    ("US$50, A$20 and HK$1", "fifty dollars , twenty Australian dollars and one Hong Kong dollar"),
    (
        "USD 5 million, EUR 2.5bn and 3 billion JPY",
        "five million dollars , two point five billion euros and three billion yen",
    ),
    ("a USD 20 bill", "a twenty dollar bill"),
    # a code without an amount, and a currency pair, stay letters
    ("The USD fell; EUR/USD 1.08 today.", "The USD fell , EUR USD one point zero eight today ."),
]

FEET_AND_INCHES = [
    ("He is 5 ft 11 in tall.", "He is five feet eleven inches tall ."),
    ("She's 5 feet 4 in and 6 ft 1 in.", "She's five feet four inches and six feet one inch ."),
    ("He is 5 ft 11 in. The end", "He is five feet eleven inches . The end"),
    # "in" as a word stays one
    ("He is 6 ft 2 in his socks.", "He is six feet two in his socks ."),
    ("Put 5 in the box; born in 1990.", "Put five in the box , born in nineteen ninety ."),
]

FAR_YEARS = [
    (
        "In the year 2525, if man is still alive",
        "In the year twenty five twenty five , if man is still alive",
    ),
    (
        "The year 2100 arrives, then the year 3000.",
        "The year twenty one hundred arrives , then the year three thousand .",
    ),
    (
        "In 2350 BC and 2105 AD, 4004 BC",
        "In twenty three fifty BC and twenty one oh five AD , four thousand four BC",
    ),
    ("in 2150 we will see.", "in twenty one fifty we will see ."),
    # no year without a mark of one
    (
        "in 2500 years, put 2500 in the bank",
        "in two thousand five hundred years , put two thousand five hundred in the bank",
    ),
]

MILITARY_TIMES = [
    ("Report at 0800 hours.", "Report at oh eight hundred hours ."),
    ("1900 hours", "nineteen hundred hours"),
    ("at 0600 hrs, wake at 0530", "at oh six hundred hours , wake at oh five thirty"),
    (
        "Taps at 2300 hours; reveille at 0000 hours, 0030.",
        "Taps at twenty three hundred hours , reveille at zero hundred hours , zero zero thirty .",
    ),
    ("Open 0800-1700 hours.", "Open oh eight hundred to seventeen hundred hours ."),
    # counts of hours, phone numbers and PINs stay
    ("He logged 1900 hours of flight time.", "He logged one thousand nine hundred hours of flight time ."),
    (
        "Call 0800 123 4567, PIN 0800.",
        "Call zero eight zero zero , one two three , four five six seven , PIN zero eight zero zero .",
    ),
]

DECADE_RANGES = [
    ("The 1990s-2000s", "The nineteen nineties to two thousands"),
    ("the 1980s-90s and the '60s–'70s", "the nineteen eighties to nineties and the sixties to seventies"),
]

MEASURES_BEFORE_A_NOUN = [
    ("Plug the 5V adapter in.", "Plug the five volt adapter in ."),
    ("Plug the 12V charger into the 5V port.", "Plug the twelve volt charger into the five volt port ."),
    ("my 3ft ruler, your 9mm pistol's barrel", "my three foot ruler , your nine millimeter pistol's barrel"),
    ("Their 2GB plan and its 4.5V output", "Their two gigabyte plan and its four point five volt output"),
    # a verb, a preposition, a word in "s" or "ly", or a spaced measure: the plural stays
    ("It draws 5V; the 5V are enough.", "It draws five volts , the five volts are enough ."),
    (
        "the 9mm in the drawer, the 5V and 3.3V rails",
        "the nine millimeters in the drawer , the five volts and three point three volts rails",
    ),
    ("give her 5mg daily, the 5 V adapter", "give her five milligrams daily , the five volts adapter"),
]

STREETS = [
    ("He lives at 12 Main St. St. Louis is far.", "He lives at twelve Main street saint Louis is far ."),
    ("He lives at 12 Main St. The house is red.", "He lives at twelve Main street . The house is red ."),
]

SCIENCE_AND_MODELS = [
    (
        "The speed of light is 3e8 m/s.",
        "The speed of light is three times ten to the power of eight meters per second .",
    ),
    (
        "6.626e-34, -1e-3 and 8E9",
        "six point six two six times ten to the power of minus thirty four , minus one times ten to the power of "
        "minus three and eight times ten to the power of nine",
    ),
    ("I have 500 MP3s and three F-16s.", "I have five hundred MP threes and three F sixteens ."),
    ("The 49ers and the 76ers", "The forty niners and the seventy sixers"),
    (
        "Buy 2, get x2 points; take 2 tablets x3 daily.",
        "Buy two , get times two points , take two tablets times three daily .",
    ),
    # a variable stays a letter and a number
    ("Set x1 = 5, solve for x1 and x2.", "Set x one equals five , solve for x one and x two ."),
]

CLOCKS_QUARTERS_AND_SIGNS = [
    ("The meeting ended at 5:45:30 p.m.", "The meeting ended at five forty five and thirty seconds P-M ."),
    (
        "Call me at 9:15:45 am, doors open at 6:30:00 PM.",
        "Call me at nine fifteen and forty five seconds A-M , doors open at six thirty P-M .",
    ),
    # without "at" or a meridiem it is a time taken
    ("The race finished in 2:03:59.", "The race finished in two hours three minutes fifty nine seconds ."),
    (
        "Q4 2023 earnings beat Q1-Q2 results.",
        "Q four twenty twenty three earnings beat Q one to Q two results .",
    ),
    (
        "Our FY2024-25 plan and FY 2025 results",
        "Our FY twenty twenty four to twenty five plan and FY twenty twenty five results",
    ),
    ("My GPA is 3.85/4.0.", "My GPA is three point eight five out of four point zero ."),
    ("DM me @ 5pm.", "DM me at five P-M ."),
]


@pytest.mark.parametrize("text, normalised", CURRENCY_CODES)
def test_a_currency_code_reads_as_its_currency(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", FEET_AND_INCHES)
def test_a_bare_in_after_feet_is_inches(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", FAR_YEARS)
def test_a_marked_year_past_2099_reads_in_pairs(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", MILITARY_TIMES)
def test_military_times_read_as_hundreds(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", DECADE_RANGES)
def test_a_range_of_decades_keeps_its_to(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", MEASURES_BEFORE_A_NOUN)
def test_a_compact_measure_describing_a_noun_after_a_determiner_is_singular(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", STREETS)
def test_a_saint_after_an_address_street_ends_no_sentence(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", SCIENCE_AND_MODELS)
def test_scientific_notation_model_plurals_and_multipliers_are_read(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", CLOCKS_QUARTERS_AND_SIGNS)
def test_clock_times_with_seconds_quarters_fiscal_years_and_ratings_are_read(text, normalised):
    assert normalize_english(text) == normalised


def test_the_new_readings_reach_the_phones():
    assert english_to_phones("Up at 0800 hours, 50 SEK, the 49ers.") == english_to_phones(
        "Up at oh eight hundred hours, fifty Swedish kronor, the forty niners.")


def test_a_code_that_is_also_an_acronym_reads_as_money_only_when_it_looks_like_money():
    from autocompress.models.gpt_sovits.text import normalize_english

    assert "dollars" not in normalize_english("Open the CAD 2024 software.")
    assert "Canadian dollars" in normalize_english("It costs CAD 1,299.99.")
    assert "Canadian dollars" in normalize_english("It costs CAD 49.50.")
