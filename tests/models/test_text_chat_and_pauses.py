"""The English front end on what people type into a TTS box: hashtags and words in camel case,
a score next to a word of working hours, emoticons, chat shorthand, parentheses, signs such as
"±" and "~", a clock time before a time zone, codes, blood pressure and a few units. Each case
used to read wrong ("one hundred DaysOfCode", "won nine to five daily", ":D" as the letter D,
"idk" as "ihdk", "350°F (175°C)" run together)."""

from __future__ import annotations

import pytest

from autocompress.models.gpt_sovits.text import english_to_phones, english_to_word_phones, normalize_english

READINGS = [
    # camel case runs words together: a hashtag is its words, a leading number a number
    ("Join #100DaysOfCode today!", "Join one hundred Days Of Code today !"),
    ("#ThrowbackThursday and #BlackLivesMatter", "Throwback Thursday and Black Lives Matter"),
    ("ChatGPT on macOS", "Chat GPT on mac OS"),
    # ... while dictionary words, names with a prefix, acronym plurals and "PhD" stay whole
    ("My iPhone, eBook, McKenna, GPUs and PhD.", "My iPhone , eBook , McKenna , GPUs and PhD ."),
    # a score word before a falling pair keeps the score, unless a job noun follows
    ("They won 9-5 daily.", "They won nine - five daily ."),
    ("Our team lost 9-5 daily for weeks.", "Our team lost nine - five daily for weeks ."),
    ("He lost his 9-5 job.", "He lost his nine to five job ."),
    ("The 9-5 grind.", "The nine to five grind ."),
    # a meridiem before a time zone does not end the sentence
    ("They met at 10 a.m. EST to talk.", "They met at ten A-M EST to talk ."),
    ("It starts at 9 a.m. Then we eat.", "It starts at nine A-M . Then we eat ."),
    # thousands with a comma, and units
    ("1,000s of people", "thousands of people"),
    ("It gets 35 mpg at 72 bpm.", "It gets thirty five miles per gallon at seventy two beats per minute ."),
    # a code after "code is" or "code:", digit by digit
    ("Your code is 482910.", "Your code is four eight two nine one zero ."),
    ("The code: 1234 works.", "The code , one two three four works ."),
    # blood pressure, and "vs" without its dot
    ("BP was 120/80 today.", "BP was one hundred twenty over eighty today ."),
    ("PS5 vs Xbox", "PS five versus Xbox"),
    # emoticons are not read as marks, letters or numbers
    ("Thanks for the help :)", "Thanks for the help"),
    ("See you :D lol ;) <3 :-(", "See you lol"),
    ("Great:) ok", "Great ok"),
    ("Visit http://example.com/x today", "Visit example dot com slash x today"),
    # signs read as words
    ("±5% and x ≈ 3", "plus or minus five percent and x approximately three"),
    ("~10 items", "about ten items"),
    # a parenthesis is a pause; a function call and a phone number are not parentheticals
    ("Preheat to 350°F (175°C) for 20 min.",
     "Preheat to three hundred fifty degrees Fahrenheit , one hundred seventy five degrees Celsius , for twenty minutes ."),
    ("Serve with rice (optional).", "Serve with rice , optional ."),
    ("Items: 1) pens 2) paper", "Items , one , pens two , paper"),
    ("f(x) = 3", "f x equals three"),
    ("Call (212) 555-1234.", "Call two one two , five five five , one two three four ."),
]


@pytest.mark.parametrize(("text", "expected"), READINGS)
def test_typed_text_readings(text: str, expected: str) -> None:
    assert normalize_english(text) == expected


@pytest.mark.parametrize("word", ["idk", "omg", "ikr", "hbu", "tmi"])
def test_chat_shorthand_without_a_syllable_is_spelled(word: str) -> None:
    assert english_to_phones(word) == english_to_phones("-".join(word.upper()))


@pytest.mark.parametrize("word", ["zeb", "kub", "yaa"])
def test_short_lowercase_words_that_form_a_syllable_are_not_spelled(word: str) -> None:
    assert english_to_phones(word) != english_to_phones("-".join(word.upper()))


def test_an_answer_marked_a_is_the_letter() -> None:
    words = english_to_word_phones("Q: Why? A: Because.")
    assert words[4] == ["EY1"]  # Q , Why ? A: the letter's name, not the article "uh"
