"""presidio's phone recognizer, asked only about the regions that could match a text.

`PhoneRecognizer` runs python-phonenumbers' `PhoneNumberMatcher` once per region (~0.2 ms
per run of five or more digits, per region). With leniency VALID a region R matches only
a number `is_valid_number` accepts. Where a text holds no plus sign, no dialling prefix of
R at the start of a group of digits, no 'x' beside a digit (three make a "vanity" number
whose letters become digits) and no run of digits longer than a national number, a number
parsed there has R's country code, and its national number is a contiguous run of the
text's digits (parsing only drops separators and prefixes: R's national prefix, a carrier
code, R's own country code, an extension). `is_valid_number` requires that national
number to match the pattern of some type of number (fixed line, mobile, toll free, ...)
of a region sharing that country code. So when no run of the text's digits matches any
of those patterns, R's matcher cannot find anything, and it is not run. The regions that
remain go through presidio's recognizer unchanged; `tests/guardrails/test_phone_regions.py`
checks the results equal presidio's on generated numbers in every format, dates, ids,
prefixes and random digit strings.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

MAX_NATIONAL_DIGITS = 17  # python-phonenumbers' longest national significant number
PLUS = ("+", "\uff0b")
X_NEAR_DIGIT = re.compile(r"\d\W*x|x\W*\d", re.IGNORECASE)
NUMBER_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
                "personal_number", "voip", "pager", "uan", "voicemail")  # fmt: skip


@functools.cache
def national_numbers(country_code: int) -> re.Pattern[str]:
    """Every type of number of every region with this country code, as one pattern."""
    patterns = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = PhoneMetadata.metadata_for_region(region)
        for kind in NUMBER_TYPES if metadata is not None else ():
            desc = getattr(metadata, kind, None)
            if desc is not None and desc.national_number_pattern:
                patterns.append(desc.national_number_pattern)
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)")


def digit_groups(text: str) -> tuple[str, list[int], int]:
    """The text's decimal digits (any script, as ASCII), where each group of adjacent
    digits starts in that string, and the longest group's length."""
    digits: list[str] = []
    starts: list[int] = []
    run = longest = 0
    for i, char in enumerate(text):
        if not char.isdecimal():
            continue
        if i == 0 or not text[i - 1].isdecimal():
            starts.append(len(digits))
            run = 0
        digits.append(str(unicodedata.decimal(char)))
        run += 1
        longest = max(longest, run)
    return "".join(digits), starts, longest


class RegionTest:
    """Whether one region's matcher could find a number in a text."""

    def __init__(self, region: str) -> None:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            raise ValueError(f"unknown phone region {region!r}")
        self.national = national_numbers(metadata.country_code)
        self.dialling = re.compile(metadata.international_prefix or r"(?!)")

    def possible(self, digits: str, group_starts: list[int]) -> bool:
        if any(self.dialling.match(digits, start) for start in group_starts):
            return True  # after a dialling prefix the country could be any
        # a run from `start` matching a national number (the patterns bound their length)
        return any(self.national.match(digits, start) for start in range(len(digits)))


class PrunedPhoneRecognizer(PhoneRecognizer):
    """presidio's recognizer over the regions `RegionTest` cannot rule out."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tests = {region: RegionTest(region) for region in self.supported_regions}

    def regions(self, text: str) -> tuple[str, ...]:
        digits, starts, longest = digit_groups(text)
        if (
            any(p in text for p in PLUS)
            or longest > MAX_NATIONAL_DIGITS
            or X_NEAR_DIGIT.search(text)
        ):
            return tuple(self.supported_regions)
        return tuple(r for r in self.supported_regions if self.tests[r].possible(digits, starts))

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
