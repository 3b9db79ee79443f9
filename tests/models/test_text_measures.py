"""The English front end on versions, units, mixed numbers, toll-free numbers in letters and a
few other forms that used to read wrongly ("Python three point one two", "three hundred fifty W",
"two one half", "one - eight hundred FLOWERS")."""

from __future__ import annotations

import logging

import pytest

from autocompress.models.gpt_sovits.text import english_to_phones, normalize_english

VERSIONS = [
    ("I use Python 3.12 daily.", "I use Python three point twelve daily ."),
    (
        "Upgrade from Python 2.7 to Python 3.10.",
        "Upgrade from Python two point seven to Python three point ten .",
    ),
    (
        "Update to v2.12, or version 3.11.",
        "Update to version two point twelve , or version three point eleven .",
    ),
    ("Ubuntu 22.04 and iOS 17.4", "Ubuntu twenty two point zero four and iOS seventeen point four"),
    ("Python 3.12.1 and v2.1.0", "Python three point twelve point one and version two point one point zero"),
    # a decimal elsewhere is read digit by digit after the point
    (
        "It weighs 3.12 kg and costs 3.15 more.",
        "It weighs three point one two kilograms and costs three point one five more .",
    ),
]

UNITS = [
    ("It uses 350 W of power.", "It uses three hundred fifty watts of power ."),
    ("It draws 350 W. The fan spins.", "It draws three hundred fifty watts . The fan spins ."),
    ("1 W, 5V, 2 L of milk, 1 L", "one watt , five volts , two liters of milk , one liter"),
    (
        "5 mA, 10 kV, 3 MW, 2 GW, 250 mL, 5 ns, 3 nm, 80 dB, 100 Mbps, 15 gal, 7200 rpm",
        "five milliamps , ten kilovolts , three megawatts , two gigawatts , two hundred fifty milliliters , five "
        "nanoseconds , three nanometers , eighty decibels , one hundred megabits per second , fifteen gallons , "
        "seven thousand two hundred revolutions per minute",
    ),
    ("He ran 100m in 9.58s.", "He ran one hundred meters in nine point five eight seconds ."),
    (
        "12 in. of snow, a 12 in. pizza. It grew 1 in.",
        "twelve inches of snow , a twelve inch pizza . It grew one inch .",
    ),
    (
        "The film runs 2h 15m, 1 hr 5 min or 24h.",
        "The film runs two hours fifteen minutes , one hour five minutes or twenty four hours .",
    ),
    # a capital letter that is no unit stays a letter
    ("I have 5 V-neck shirts, we won 3 V 2.", "I have five V-neck shirts , we won three V two ."),
    ("Size 10 W shoes, take exit 12 W.", "Size ten W shoes , take exit twelve W ."),
    ("He lives at 100 W Main St.", "He lives at one hundred W Main street ."),
    ("W is a letter.", "W is a letter ."),
]

DESCRIBING_MEASURES = [
    ("A 12V battery and a 100W bulb.", "A twelve volt battery and a one hundred watt bulb ."),
    ("a 5 km run, a 2 GB of data", "a five kilometer run , a two gigabytes of data"),
    (
        "a $20 bill, an €8 sandwich, a $5 million deal",
        "a twenty dollar bill , an eight euro sandwich , a five million dollar deal",
    ),
    ("He paid $20 and a $5.", "He paid twenty dollars and a five dollars ."),
    ("a $5.99 item", "a five dollars ninety nine cents item"),
]

FRACTIONS = [
    (
        "Use 2 1/2 cups flour and 1 3/4 tbsp oil.",
        "Use two and a half cups flour and one and three quarters tablespoons oil .",
    ),
    ("Cut a 2-1/2 inch piece, 3 1/8 inch.", "Cut a two and a half inch piece , three and an eighth inch ."),
    ("Add 1 1/4 tsp salt.", "Add one and a quarter teaspoons salt ."),
    ("Add 3/4 cup milk and 1/2 tsp.", "Add three quarters cup milk and one half teaspoon ."),
    ("Add 1/2 tsp. Then stir.", "Add one half teaspoon . Then stir ."),
    (
        "Christmas is 12/25, and 1/2 is a half.",
        "Christmas is December twenty fifth , and one half is a half .",
    ),
    ("A bad 1/10 rating, a 9/10 review.", "A bad one out of ten rating , a nine out of ten review ."),
]

OTHERS = [
    ("Call 1-800-FLOWERS now.", "Call one eight hundred flowers now ."),
    ("Call 888-FLOWERS or 1-866-GO-FEDEX.", "Call eight eight eight flowers or one eight six six go-fedex ."),
    (
        "Call 555-123-4567 or +1 555 123 4567.",
        "Call five five five , one two three , four five six seven or one , five five five , one two three , four "
        "five six seven .",
    ),
    (
        "Call 020 7946 0958 or 07700 900123.",
        "Call zero two zero , seven nine four six , zero nine five eight or zero seven seven zero zero , nine zero zero one two three .",
    ),
    ("The RTX 4090 draws 450 W.", "The RTX forty ninety draws four hundred fifty watts ."),
    ("There are 2019 even numbers.", "There are two thousand nineteen even numbers ."),
    ("Count 1999 odd values.", "Count one thousand nine hundred ninety nine odd values ."),
    ("In 2019 even numbers were rare.", "In twenty nineteen even numbers were rare ."),
    ("2020 even brings joy.", "twenty twenty even brings joy ."),
    ("It's 10:00 AM EST. Est. 1887", "It's ten A-M EST . established eighteen eighty seven"),
    ("Watch in 1080p or 720p.", "Watch in ten eighty p or seven twenty p ."),
    ("Ages 18+. It was +5 degrees.", "Ages eighteen plus . It was plus five degrees ."),
    ("1600 Pennsylvania Ave NW and 12 Elm Dr", "sixteen hundred Pennsylvania avenue NW and twelve Elm drive"),
]


@pytest.mark.parametrize("text, normalised", VERSIONS)
def test_a_version_after_a_software_name_reads_each_part_as_a_number(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", UNITS)
def test_electrical_and_other_units_after_a_number_are_read(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", DESCRIBING_MEASURES)
def test_a_measure_between_a_and_a_noun_is_singular(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", FRACTIONS)
def test_mixed_numbers_and_spoons_are_read(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text, normalised", OTHERS)
def test_phone_words_counts_time_zones_resolutions_and_signs_are_read(text, normalised):
    assert normalize_english(text) == normalised


def test_a_micro_unit_is_read_without_a_foreign_letter_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="autocompress.models.gpt_sovits.text"):
        assert (
            normalize_english("It takes 5 µs or 3 μm.") == "It takes five microseconds or three micrometers ."
        )
    assert "no English reading" not in caplog.text


def test_unit_prefixes_cmudict_lacks_are_read_before_the_word():
    assert english_to_phones("gigawatts") == "G IH1 G AH0 W AA1 T S".split()
    assert english_to_phones("terahertz") == "T EH1 R AH0 HH EH1 R T S".split()
