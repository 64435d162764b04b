"""What an embedding misses and a semantic hit must not: two texts that differ in a
number, a negation or a named thing ("convert 5 km to miles" / "convert 50 km to
miles", "is X safe" / "is X unsafe", "capital of France" / "capital of Spain") never
share an answer, however close their vectors are. Pure functions."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
NEGATIONS = frozenset({
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "can't", "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't",
    "won't", "wouldn't", "shouldn't", "couldn't", "mustn't", "haven't", "hasn't", "hadn't",
    "except", "excluding", "less", "fewer", "least", "worst", "un", "non", "anti", "against",
})  # fmt: skip
# prefixes that turn a word into its opposite ("safe" / "unsafe", "legal" / "illegal")
OPPOSITE_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non", "anti", "de", "mis")
COMPARATIVES = frozenset({"more", "most", "better", "best", "larger", "smaller", "bigger",
                          "higher", "lower", "before", "after", "above", "below", "over",
                          "under", "increase", "decrease", "max", "min", "maximum", "minimum",
                          "first", "last"})  # fmt: skip


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'")


def numbers(text: str) -> Counter[str]:
    return Counter(n.replace(",", "") for n in NUMBER.findall(fold(text)))


def words(text: str) -> list[str]:
    return WORD.findall(fold(text))


def names(text: str) -> set[str]:
    """Capitalised words not at a sentence's start (a crude, fast proper-noun set),
    possessives folded ("France's" is "France")."""
    found: set[str] = set()
    for sentence in re.split(r"(?<=[.!?:])\s+|\n+", fold(text)):
        for word in words(sentence)[1:]:
            if word[0].isupper() and word.lower() not in NEGATIONS and word != "I":
                found.add(word.removesuffix("'s").lower())
    return found


def opposites(a: set[str], b: set[str]) -> bool:
    """A word in one text whose prefixed opposite is in the other (safe/unsafe)."""
    for word in a:
        for prefix in OPPOSITE_PREFIXES:
            if prefix + word in b or (word.startswith(prefix) and word[len(prefix) :] in b):
                return True
    return False


def same_meaning_markers(a: str, b: str) -> bool:
    """True unless the texts differ in numbers, negations, opposites, comparatives or
    named things: then the answer for one is not the answer for the other."""
    if numbers(a) != numbers(b):
        return False
    wa, wb = {w.lower() for w in words(a)}, {w.lower() for w in words(b)}
    if (wa & NEGATIONS) != (wb & NEGATIONS) or (wa & COMPARATIVES) != (wb & COMPARATIVES):
        return False
    only_a, only_b = wa - wb, wb - wa
    if opposites(only_a, only_b):
        return False
    return names(a) == names(b)
