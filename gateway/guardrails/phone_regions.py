"""presidio's phone recognizer, asked only about the regions that could match a text.

`PhoneRecognizer` runs python-phonenumbers' `PhoneNumberMatcher` once per region (~0.05
ms per region on a short window). With leniency VALID a region R matches only a number
`is_valid_number` accepts. Where a text holds no plus sign, no 'x' beside a digit (three
make a "vanity" number whose letters become digits) and no run of digits longer than a
national number, a number found for R has R's country code, or follows a dialling
prefix of R. The matcher's candidate starts at a group of digits and joins groups only
with its punctuation (spaces, dashes, dots, slashes, brackets), so its digits are a run
of one such chunk; parsing drops separators and prefixes (R's national prefix, a carrier
code, R's own country code, an extension), and the national number that remains must
match the pattern, and have a length, of some type of number (fixed line, mobile, toll
free, ...) of a region sharing that country code. Leniency VALID also requires the
national prefix where the number's format needs one (`_is_national_prefix_present_if_
required`: most of Europe's formats are "0$1", so "2024-03-15" is a valid German number
in the metadata but never matched without its 0).

So for each group of digits: if it starts with R's dialling prefix, R stays; if it
starts with R's national prefix or country code, R stays if a national number of R
starts anywhere in the rest of its chunk; otherwise nothing is stripped, and R stays
only if the digits from the group start a valid national number of R whose format needs
no national prefix. Regions that stay go through presidio's recognizer unchanged;
`tests/guardrails/test_phone_regions.py` checks the results equal presidio's on
generated numbers of many countries in every format, with and without their prefixes,
dates, ids, prices and random digit strings.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any, NamedTuple

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, region_code_for_country_code
from phonenumbers.phonenumberutil import (  # the matcher's own rules, reused as they are
    _VALID_PUNCTUATION,
    _formatting_rule_has_first_group_only,
)
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

MAX_NATIONAL_DIGITS = 17  # python-phonenumbers' longest national significant number
PLUS = ("+", "\uff0b")
X_NEAR_DIGIT = re.compile(r"\d\W*x|x\W*\d", re.IGNORECASE)
NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
                "personal_number", "voip", "pager", "uan", "voicemail")  # fmt: skip


@functools.cache
def national_numbers(country_code: int) -> tuple[re.Pattern[str], tuple[int, ...]]:
    """Every type of number of every region with this country code, as one pattern, and
    the lengths `is_valid_number` allows them (a type without lengths of its own has its
    region's general ones)."""
    patterns: list[str] = []
    lengths: set[int] = set()
    for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        general = metadata.general_desc.possible_length if metadata.general_desc else ()
        for kind in NUMBER_TYPES:
            desc = getattr(metadata, kind, None)
            if desc is not None and desc.national_number_pattern:
                patterns.append(desc.national_number_pattern)
                lengths.update(desc.possible_length or general or range(1, MAX_NATIONAL_DIGITS + 1))
    pattern = re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")
    return pattern, tuple(sorted(n for n in lengths if n > 0))


# a matcher's candidate joins groups of digits only with these (x, spaces, dashes, dots,
# slashes, brackets, tildes), so a number never spans a word or a currency sign
CHUNK = re.compile(rf"\d(?:[{_VALID_PUNCTUATION}]*\d)*")
GROUP = re.compile(r"\d+")


class Digits(NamedTuple):
    text: str  # the text's decimal digits (any script), as ASCII
    starts: list[int]  # where each group of adjacent digits starts in `text`
    ends: list[int]  # where the candidate that group could begin ends (its chunk's end)
    longest: int  # the longest group's length


def digit_groups(text: str) -> Digits:
    runs: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    size = longest = 0
    for chunk in CHUNK.finditer(text):
        first = len(starts)
        for group in GROUP.finditer(chunk.group()):
            run = group.group()
            starts.append(size)
            runs.append(run)
            size += len(run)
            longest = max(longest, len(run))
        ends += [size] * (len(starts) - first)
    digits = "".join(runs)
    if not digits.isascii():
        digits = "".join(str(unicodedata.decimal(char)) for char in digits)
    return Digits(digits, starts, ends, longest)


class Group(NamedTuple):
    start: int  # where a group of digits starts
    end: int  # where its chunk ends
    run: str  # the digits from `start`, as many as a national number can have
    prefixed: bool  # whether some region's dialling or national prefix or code starts it


class RegionTest:
    """Whether one region's matcher could find a number in a text."""

    def __init__(self, region: str) -> None:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            raise ValueError(f"unknown phone region {region!r}")
        code = metadata.country_code or 0
        self.national, self.lengths = national_numbers(code)
        self.shortest = min(self.lengths, default=MAX_NATIONAL_DIGITS + 1)
        self.dialling = re.compile(metadata.international_prefix or r"(?!)")
        # the main region of the country code: its formats decide the prefix rule
        main = PhoneMetadata.metadata_for_region(region_code_for_country_code(code))
        self.formats = [format_rule(f) for f in main.number_format] if main else []
        prefixes = {m.national_prefix_for_parsing for m in (metadata, main) if m}
        self.stripped = re.compile(
            "|".join(f"(?:{p})" for p in sorted(filter(None, prefixes))) or r"(?!)"
        )
        self.country_code = str(code)
        # where a group starts with none of these, only `_unprefixed` can apply
        self.prefixes = (self.dialling.pattern, self.stripped.pattern, self.country_code)
        # years, ids and prices recur from text to text
        self._unprefixed = functools.lru_cache(maxsize=4096)(self._unprefixed)  # type: ignore[method-assign]

    def possible(self, digits: str, groups: list[Group]) -> bool:
        for start, end, run, prefixed in groups:
            if prefixed:
                if self.dialling.match(digits, start):
                    return True  # after a dialling prefix the country could be any
                if end - start < self.shortest:
                    continue
                if self.stripped.match(digits, start) or digits.startswith(
                    self.country_code, start
                ):
                    # a prefix may be stripped: a national number starts somewhere after it
                    if any(self.national.match(digits, i, end) for i in range(start, end)):
                        return True
                    continue
            elif end - start < self.shortest:
                continue  # too few digits left for a national number
            if self._unprefixed(run):
                return True
        return False

    def _unprefixed(self, run: str) -> bool:
        """A national number at the start of `run` that is valid and needs no national
        prefix."""
        for size in self.lengths:
            number = run[:size]
            if (
                size <= len(run)
                and self.national.fullmatch(number)
                and not self._needs_prefix(number)
            ):
                return True
        return False

    def _needs_prefix(self, number: str) -> bool:
        """phonenumbers' `_choose_formatting_pattern_for_number`: the first format whose
        last leading-digits pattern and whole pattern fit, over precompiled patterns."""
        for leading, pattern, needs in self.formats:
            if (leading is None or leading.match(number)) and pattern.fullmatch(number):
                return needs
        return False


def format_rule(fmt: Any) -> tuple[re.Pattern[str] | None, re.Pattern[str], bool]:
    """A number format as (leading digits, pattern, whether it needs the national prefix
    written: `_is_national_prefix_present_if_required`)."""
    leading = re.compile(fmt.leading_digits_pattern[-1]) if fmt.leading_digits_pattern else None
    rule = fmt.national_prefix_formatting_rule
    needs = bool(
        rule
        and not fmt.national_prefix_optional_when_formatting
        and not _formatting_rule_has_first_group_only(rule)
    )
    return leading, re.compile(fmt.pattern), needs


class PrunedPhoneRecognizer(PhoneRecognizer):
    """presidio's recognizer over the regions `RegionTest` cannot rule out."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tests = {region: RegionTest(region) for region in self.supported_regions}
        # any region's dialling prefix, national prefix or country code
        prefixes = sorted({p for test in self.tests.values() for p in test.prefixes})
        self.prefixed = re.compile("|".join(f"(?:{p})" for p in prefixes))

    def regions(self, text: str) -> tuple[str, ...]:
        digits = digit_groups(text)
        if (
            any(p in text for p in PLUS)
            or digits.longest > MAX_NATIONAL_DIGITS
            or X_NEAR_DIGIT.search(text)
        ):
            return tuple(self.supported_regions)
        text = digits.text
        groups = [
            Group(
                s, e, text[s : min(e, s + MAX_NATIONAL_DIGITS)], bool(self.prefixed.match(text, s))
            )
            for s, e in zip(digits.starts, digits.ends, strict=True)
            if e - s >= 4  # a dialling prefix, a country code and a number take 4 digits
        ]
        if not groups:
            return ()
        return tuple(r for r in self.supported_regions if self.tests[r].possible(text, groups))

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        regions = self.regions(text)
        if not regions:
            return []
        results: list[Any] = self._over(regions).analyze(text, entities, nlp_artifacts)
        return results

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one per scanner; a few region subsets)
    def _over(self, regions: tuple[str, ...]) -> PhoneRecognizer:
        return PhoneRecognizer(supported_language=self.supported_language,
                               supported_entity=self.supported_entities[0],
                               supported_regions=regions, leniency=self.leniency,
                               context=self.context)  # fmt: skip
