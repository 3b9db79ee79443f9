"""The English front end on text a user types: counts after "May", initials, web and mail
addresses, phone numbers, short units and other everyday forms."""

from __future__ import annotations

import pytest

from autocompress.exceptions import DataError
from autocompress.models.gpt_sovits.text import (
    english_to_phones,
    english_to_word_phones,
    normalize_english,
    split_phones,
    text_to_ids,
)


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


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("In 1999 we moved.", "In nineteen ninety nine we moved ."),
        ("The 2024 election was close.", "The twenty twenty four election was close ."),
        ("Since 1850 the town grew, and 2005 was dry.", "Since eighteen fifty the town grew , and two thousand five was dry ."),
        ("He was born in 1066.", "He was born in ten sixty six ."),
        ("1776 was a big year for Windows 2000 fans.", "seventeen seventy six was a big year for Windows two thousand fans ."),
        ("Room 1204, code 2048.", "Room twelve oh four , code twenty forty eight ."),
        ("The 2024-25 season, 1939-45 and 2024-23.",
         "The twenty twenty four to twenty five season , nineteen thirty nine to forty five and twenty twenty four - twenty three ."),
        # a quantity: a plural noun, a unit, a hyphenated word or a sign after it
        ("1999 people came.", "one thousand nine hundred ninety nine people came ."),
        ("It costs 1999 dollars.", "It costs one thousand nine hundred ninety nine dollars ."),
        ("The 2000 soldiers ran 1500 m at 1200°C for 1999$.",
         "The two thousand soldiers ran one thousand five hundred meters at one thousand two hundred degrees Celsius"
         " for one thousand nine hundred ninety nine dollars ."),
        ("In 1999 people voted.", "In nineteen ninety nine people voted ."),  # a cue word keeps the year
        ("The 1000s and 1990s.", "The thousands and nineteen nineties ."),
    ],
)
def test_a_bare_four_digit_number_is_a_year_unless_it_counts_something(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize(
    ("word", "phones"),
    [
        ("COVID", "K OW1 V IH0 D"),  # pronounceable: read as a word
        ("FOMO", "F OW1 M OW0"),
        ("POTUS", "P OW1 T AH0 S"),
        ("NIMBYs", "N IH1 M B IY0 Z"),
        ("COVIDs", "K OW1 V IH0 D Z"),
        ("NAND", "N AE1 N D"),
    ],
)
def test_a_pronounceable_unknown_acronym_is_read_as_a_word(word, phones):
    assert english_to_phones(word) == phones.split()


@pytest.mark.parametrize("word", ["MLB", "NHL", "JPEG", "DIY", "FAQ", "NCAA", "IMHO", "GPU", "FBI", "HTTP", "NBA", "HTTPS", "UCLA", "ACLU"])
def test_an_unpronounceable_or_short_acronym_is_spelled(word):
    names = english_to_phones("-".join(word))  # "M-L-B": each letter's name
    assert [p.rstrip("012") for p in english_to_phones(word)] == [p.rstrip("012") for p in names]


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("Sooo goood, Yesss! Nooo, pleeease.", "So good, yes! No, please."),
        ("www and XYZ", "W-W-W and X-Y-Z"),  # no vowel: still spelled ("Zzz" is a sound)
        ("the O'Neills", "the O'Neill's"),  # a dictionary word's plural
        ("DaysOfCode and PowerPoint", "Days Of Code and PowerPoint"),  # camel case
        ("rock 'n' roll, nothin' 'cause", "rock 'n roll, nothin' 'cause"),
    ],
)
def test_stretched_plural_camel_case_and_clipped_words_read_as_their_dictionary_words(text, same_as):
    assert english_to_phones(text) == english_to_phones(same_as)


def test_clipped_words_keep_their_dictionary_apostrophe_and_quotes_go():
    assert english_to_word_phones("nothin'")[0] == ["N", "AH1", "TH", "IH0", "N"]  # not "nothing" read as "nothin"
    assert english_to_word_phones("'cause")[0] == ["K", "AH0", "Z"]
    assert english_to_word_phones("rock 'n' roll")[1] == ["AH0", "N"]  # not the letter N
    assert normalize_english("'Hello there,' he said.") == "Hello there , he said ."


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("Use C++ or C# and F#.", "Use C plus plus or C sharp and F sharp ."),
        ("Follow #100DaysOfCode, not #1.", "Follow one hundred Days Of Code , not number one ."),
        ("Call 911 after 9/11, not 911 calls.", "Call nine one one after nine eleven , not nine hundred eleven calls ."),
        ("10 / 2 = 5 and a^2 + 2^10.", "ten divided by two equals five and a squared plus two to the power of ten ."),
        ("Open report_v2.docx now.", "Open report v two dot docx now ."),
        ("St. Mark's Pl. near Oak Ct. off Hwy. 9.", "saint Mark's place near Oak court off highway nine ."),
    ],
)
def test_code_names_hashtags_emergency_numbers_operators_and_file_names(text, normalised):
    assert normalize_english(text) == normalised


@pytest.mark.parametrize("text", ["", "   \n ", "...", "?!", "$ # @", "😀🎉", "Москва", "你好。"])
def test_text_without_english_words_is_refused_with_one_line(text):
    with pytest.raises(DataError, match="has no English words to speak") as error:
        text_to_ids(text)
    assert "\n" not in str(error.value)
    assert ("reads English only" in str(error.value)) == any(c.isalpha() for c in text)
