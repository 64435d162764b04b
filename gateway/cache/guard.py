"""What an embedding misses and a semantic hit must not: two texts that differ in a
number, a negation, a direction or a named thing ("convert 5 km to miles" / "convert 50 km
to miles", "is X safe" / "is X unsafe", "miles to km" / "km to miles", "capital of France"
/ "capital of Spain") never share an answer, however close their vectors are. Pure
functions; measured on benchmarks/data/paraphrase_pairs.jsonl by
`python -m benchmarks.semantic_threshold`."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)


def listed(text: str) -> list[str]:
    return text.split()


NUMBER_WORDS = {w: str(i) for i, w in enumerate(listed("""
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
fifteen sixteen seventeen eighteen nineteen twenty"""))}  # fmt: skip
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
                     "thousand": "1000", "million": "1e6", "billion": "1e9", "dozen": "12",
                     "half": "0.5", "twice": "2x", "double": "2x", "triple": "3x"})  # fmt: skip
NEGATIONS = frozenset({
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without",
    "cannot", "can't", "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't",
    "won't", "wouldn't", "shouldn't", "couldn't", "mustn't", "haven't", "hasn't", "hadn't",
    "except", "excluding", "against",
})  # fmt: skip
# words whose presence in one text and not the other turns the question around
POLAR = frozenset(
    listed(
        """
above add after before begin below better bigger biggest buy cheaper cheapest close cold
create decrease delete down earlier earliest east end expensive false faster fastest fewer
first higher highest hot increase larger largest last later latest least left less longer
longest lose lost lower lowest max maximum min minimum minus more most newer newest next
north off older oldest open over plus previous raise remove right sell shorter shortest
slower slowest smaller smallest south start stop today tomorrow tonight true under up west
win won worse worst yesterday
"""
    )
)
# prefixes that turn a word into its opposite: safe/unsafe, include/exclude, enable/disable
PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non", "anti", "de", "mis", "en", "ex")
UNITS = frozenset(
    listed(
        """
byte celsius cm day dollar eur euro fahrenheit feet foot g gallon gb gbp gram hour inch kb
kelvin kg kilogram kilometer kilometre km lb liter litre m mb meter metre mile minute mm
month ounce oz percent pound second tb usd week year yen
"""
    )
)


def fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'")


def words(text: str) -> list[str]:
    return WORD.findall(fold(text))


def singular(word: str) -> str:
    word = word.lower()
    if word in ("feet", "inches"):
        return "foot" if word == "feet" else "inch"
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def numbers(text: str) -> Counter[str]:
    found = Counter(n.replace(",", "") for n in NUMBER.findall(fold(text)))
    found.update(NUMBER_WORDS[w.lower()] for w in words(text) if w.lower() in NUMBER_WORDS)
    return found


def names(text: str) -> set[str]:
    """Capitalised words not at a sentence's start (a crude, fast proper-noun set),
    possessives and plurals folded ("France's" is "France", "Sundays" is "Sunday")."""
    found: set[str] = set()
    for sentence in re.split(r"(?<=[.!?:])\s+|\n+", fold(text)):
        for word in words(sentence)[1:]:
            if word[0].isupper() and word != "I":
                found.add(singular(word.removesuffix("'s")))
    return found


def stem(word: str) -> str:
    for prefix in PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            return word[len(prefix) :]
    return word


def opposites(a: set[str], b: set[str]) -> bool:
    """A word in one text whose prefixed opposite is in the other (safe/unsafe,
    encrypt/decrypt, import/export)."""
    stems = {stem(w): w for w in b}
    stems.update({w: w for w in b})
    return any((stem(w) in stems and stems[stem(w)] != w) or
               any(p + w in b for p in PREFIXES) for w in a)  # fmt: skip


def same_meaning_markers(a: str, b: str) -> bool:
    """True unless the texts differ in numbers, negations, polar words, opposites, units
    (or their order) or named things: then the answer for one is not the answer for the
    other."""
    if numbers(a) != numbers(b):
        return False
    la, lb = [w.lower() for w in words(a)], [w.lower() for w in words(b)]
    wa, wb = set(la), set(lb)
    if (wa & NEGATIONS) != (wb & NEGATIONS) or (wa & POLAR) != (wb & POLAR):
        return False
    if opposites(wa - wb, wb - wa):
        return False
    units_a = [u for u in map(singular, la) if u in UNITS]
    units_b = [u for u in map(singular, lb) if u in UNITS]
    if units_a and units_b and units_a != units_b:  # "how long" / "how many days" may agree
        return False
    return names(a) == names(b)
