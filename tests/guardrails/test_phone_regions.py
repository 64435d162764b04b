"""Skipping regions changes nothing: the pruned phone recognizer finds exactly what
presidio's finds, on numbers of many countries in every format, dates, ids, dialling
prefixes, extensions, other scripts' digits and random digit strings."""

import random
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from gateway.guardrails.phone_regions import PrunedPhoneRecognizer, digit_groups

FORMATS = (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164)
TYPES = (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE)
COUNTRIES = ("US", "CA", "GB", "DE", "FR", "IL", "IN", "BR", "JM", "GG", "IT", "AR", "MX",
             "JP", "AU", "CH", "NL", "ES", "RU", "CN")  # fmt: skip
SEPARATORS = [" ", "-", ".", "/", " - ", "(", ")", ""]


def examples() -> Iterator[phonenumbers.PhoneNumber]:
    """phonenumbers' example number of each type for each country of COUNTRIES."""
    for region in COUNTRIES:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                yield number


def formatted_numbers() -> list[str]:
    texts = []
    for number in examples():
        for fmt in FORMATS:
            text = phonenumbers.format_number(number, fmt)
            texts.append(f"Call {text} today")
            if fmt == PhoneNumberFormat.INTERNATIONAL:  # dialled from the US and Europe
                texts.append(f"dial 011 {text[1:]} now")
                texts.append(f"dial 00 {text[1:]} now")
                texts.append(f"or 00{text[1:].replace(' ', '')}.")
            if fmt == PhoneNumberFormat.NATIONAL:
                texts.append(f"phone: {text} x123")
                texts.append(f"tel {text} ext. 45")
    return texts


def without_prefixes() -> list[str]:
    """National numbers with their national prefix dropped (most of Europe's formats need
    it: the matcher must refuse them), or their country code written without a plus."""
    texts = []
    for number in examples():
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        significant = phonenumbers.national_significant_number(number)
        texts += [f"call {national.lstrip('0(1 ')} now", f"id {significant}.",
                  f"tel {number.country_code} {significant} ok",
                  f"tel {number.country_code}{significant}"]  # fmt: skip
    return texts


def random_texts(rng: random.Random, n: int) -> list[str]:
    texts = []
    for _ in range(n):
        groups = [
            "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6)))
            for _ in range(rng.randint(1, 5))
        ]
        body = groups[0]
        for group in groups[1:]:
            body += rng.choice(SEPARATORS) + group
        prefix = rng.choice(["", "", "0", "1", "00", "011", "(0)", "0 ", "1-", "44 ", "49", "91 ",
                             "972-", "55", "33 ", "+"])  # fmt: skip
        suffix = rng.choice(["", "", " x12", "#7", " ext 3"])
        texts.append(f"{rng.choice(['ref', 'call', 'on', 'id'])} {prefix}{body}{suffix} ok")
    return texts


FIXED = [
    "went live on 2024-03-15 after",
    "due 15/03/2024 or 03.15.2024",
    "at 12:30:45 on 1999",
    "order #72344407 shipped",
    "Wendy, OK 60455, contact",
    "card 4111 1111 1111 1111",
    "IBAN DE89 3704 0044 0532 0130 00",
    "from 193.162.75.254 and 10.0.0.1",
    "SSN 078-05-1120",
    "version 2.4.1 build 20240315",
    "tel \uff10\uff12\uff10 \uff17\uff19\uff14\uff16 \uff10\uff19\uff15\uff18 thanks",
    "call (415) 555-0132 now",
    "call 020 7946 0958",
    "call 030 123456",
    "01 23 45 67 89",
    "+1 670 771 0571",
    "1-800-FLOWERS-1",
    "5x5x5x5x5x5",
    "call 0049 30 123456",
]


@pytest.mark.parametrize(
    "regions",
    [PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS, ("US",), ("GB",), ("DE", "IL"),
     # national prefixes that are not a plain 0 or 1, carrier codes, prefix transforms,
     # Italy's leading zeros, numbers of many lengths
     ("IT", "JP", "AR", "MX", "RU", "CN", "AU", "CH", "NL", "ES", "JM", "GG")],
)  # fmt: skip
def test_the_same_numbers_as_presidio(regions: tuple[str, ...]) -> None:
    rng = random.Random(7)
    texts = FIXED + formatted_numbers() + without_prefixes() + random_texts(rng, 600)
    pruned = PrunedPhoneRecognizer(supported_language="en", supported_regions=regions)
    presidio = PhoneRecognizer(supported_language="en", supported_regions=regions)
    found = 0
    for text in texts:
        want = sorted((r.start, r.end, r.score) for r in presidio.analyze(text, ["PHONE_NUMBER"]))
        got = sorted((r.start, r.end, r.score) for r in pruned.analyze(text, ["PHONE_NUMBER"]))
        assert got == want, text
        found += bool(want)
    assert found > 50  # the corpus holds many real numbers, not only non-numbers


def test_regions_are_skipped_only_where_nothing_can_match() -> None:
    pruned = PrunedPhoneRecognizer(supported_language="en")
    # a valid German and Israeli number in the metadata, but their formats need the 0
    assert pruned.regions("went live on 2024-03-15 after") == ()
    assert pruned.regions("call 030 123456") == ("DE", "IL")  # both national prefixes are 0
    assert pruned.regions("order #7234 shipped") == ()
    assert pruned.regions("call +44 20 7946 0958") == tuple(pruned.supported_regions)
    assert digit_groups("a 12-34 \uff156") == ("123456", [0, 2, 4], [6, 6, 6], 2)
    # a number never spans a word or a currency sign
    assert digit_groups("order 12 34 shipped at $5.60") == (
        "1234560",
        [0, 2, 4, 5],
        [4, 4, 7, 7],
        2,
    )
    assert pruned.regions("order #238269 shipped at $124.24; the") == ()


def test_example_numbers_of_every_region_in_every_format() -> None:
    texts = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (*TYPES, PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for fmt in FORMATS:
                text = phonenumbers.format_number(number, fmt)
                texts += [f"tel:{text}.", f"dial 00 {text[1:]}" if text[0] == "+" else text]
    pruned = PrunedPhoneRecognizer(supported_language="en")
    presidio = PhoneRecognizer(supported_language="en")
    for text in texts:
        want = sorted((r.start, r.end) for r in presidio.analyze(text, ["PHONE_NUMBER"]))
        assert sorted((r.start, r.end) for r in pruned.analyze(text, ["PHONE_NUMBER"])) == want
    assert len(texts) > 3000
