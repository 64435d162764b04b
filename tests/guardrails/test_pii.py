"""The PII scanner finds what presidio's AnalyzerEngine finds, offline, and leaves
ordinary numbers alone."""

import asyncio
import json
import logging
import random
import re
from pathlib import Path

import orjson
import pytest
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from gateway.context import RequestContext
from gateway.guardrails.chain import GuardedStream
from gateway.guardrails.pii import RECOGNIZERS, PiiScanner, windows
from gateway.policy.models import CustomEntity, PiiGuardrail
from tests.guardrails.streams import FakeStream

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pii_generated.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
CORPUS = (
    [r["text"] for r in ROWS[::3]]
    + [  # a third of the labelled corpus, plus our own
        "Call +1 (415) 555-0132 or mail jane.doe@example.co.uk; card 4111 1111 1111 1111.",
        "IBAN DE89 3704 0044 0532 0130 00, host 10.0.0.12 and fe80::1ff:fe23:4567:890a, SSN 078-05-1120",
        "wallet 16Yeky6GMjeNkAiNcBY7ZhrLoMSgg1BoyZ, short ref 16469",
        "pay bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq or 3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        "unspecified :: and loopback ::1, mapped ::ffff:10.1.2.3, at 10:30, ratio 3:2",
    ]
    + [  # prose whose numbers are not PII: dates, ids, prices, ports, versions
        f"v2.{k}.{k % 7} live on 2024-{1 + k % 12:02d}-{1 + k % 28:02d}, order #{48213 + 7919 * k} "
        f"at ${k % 900 + 100}.{k % 100:02d}, port {8000 + k}, call (415) 555-{1000 + k:04d}"
        for k in range(0, 400, 13)
    ]
)


@pytest.fixture(scope="module")
def presidio() -> AnalyzerEngine:
    # presidio's own classes: the phone recognizer as shipped, not our region-pruned one
    factories = {**{e: f for e, (f, _) in RECOGNIZERS.items()}, "PHONE_NUMBER": PhoneRecognizer}
    assert RECOGNIZERS["PHONE_NUMBER"][0] is not PhoneRecognizer
    registry = RecognizerRegistry(
        recognizers=[f(supported_language="en") for f in factories.values()]
    )
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def spans(results: list) -> list[tuple[str, int, int, float]]:  # type: ignore[type-arg]
    return sorted((r.entity_type, r.start, r.end, round(r.score, 3)) for r in results)


def test_same_entities_as_presidio(presidio: AnalyzerEngine) -> None:
    logging.disable(logging.WARNING)  # presidio's engine logs each offline suffix-list miss
    try:
        ours = PiiScanner("pii", PiiGuardrail(type="pii", score_threshold=0.0))
        assert len(CORPUS) > 100
        for text in CORPUS:
            assert spans(ours.analyze(text)) == spans(presidio.analyze(text, language="en")), text
    finally:
        logging.disable(logging.NOTSET)


def naive_windows(text: str, candidates: re.Pattern[str]) -> list[tuple[int, int]]:
    """The definition, character by character: from each candidate's ends, over the rest
    of its word and one more word on each side; overlapping windows merged."""

    def edge(i: int, step: int) -> int:
        peek, limit = (-1, 0) if step < 0 else (0, len(text))
        for _ in range(2):
            while i != limit and text[i + peek].isspace():
                i += step
            while i != limit and not text[i + peek].isspace():
                i += step
        return i

    spans: list[tuple[int, int]] = []
    for m in candidates.finditer(text):
        start, end = edge(m.start(), -1), edge(m.end(), 1)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


def test_windows_hold_each_candidate_and_a_word_either_side() -> None:
    digits = re.compile(r"\d+")
    assert windows("a see  the 12-34 order\u2003now ok", digits) == [(2, 26)]
    rng = random.Random(3)
    for _ in range(500):
        text = "".join(rng.choice("ab1 \t\n\u00a0\u3000.-") for _ in range(rng.randint(0, 40)))
        assert windows(text, digits) == naive_windows(text, digits), repr(text)


@pytest.mark.parametrize(
    "text",
    ["Upgrade to version 2.3.1 before 2024-11-05; it costs $1,299.99 (order 48213-77).",
     "Serve on port 8080 and 443, retry after 30 seconds, batch size 4096.",
     "Meeting moved to 10:30 on 12/03/2025, room 4.12, build 20241105.1"],
)  # fmt: skip
async def test_ordinary_numbers_pass(text: str) -> None:
    assert await PiiScanner("pii", PiiGuardrail(type="pii")).scan(text) == []


async def test_phone_regions_limit_national_formats_only() -> None:
    assert PiiGuardrail(type="pii").phone_regions == PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS
    everywhere = PiiScanner("pii", PiiGuardrail(type="pii"))
    us_only = PiiScanner("pii", PiiGuardrail(type="pii", phone_regions=("US",)))
    london = "Call me on 020 7946 0958 tomorrow"
    assert [f.entity for f in await everywhere.scan(london)] == ["PHONE_NUMBER"]
    assert await us_only.scan(london) == []
    for text in ("Call (415) 555-0132 now", "Call +44 20 7946 0958 now"):
        assert [f.entity for f in await us_only.scan(text)] == ["PHONE_NUMBER"]


def test_unknown_phone_regions_are_refused_by_key_path() -> None:
    from gateway.policy.loader import PolicyError, parse_texts

    text = """
version: 1
guardrails: {pii: {type: pii, phone_regions: [US, XX]}}
"""
    with pytest.raises(PolicyError, match=r"guardrails\.pii\.phone_regions.*'XX'"):
        parse_texts([("p.yaml", text)], {})


async def test_custom_entities() -> None:
    config = PiiGuardrail(
        type="pii",
        entities=("EMAIL_ADDRESS",),
        custom=(CustomEntity(entity="EMPLOYEE_ID", pattern=r"\bEMP-\d{6}\b"),),
    )
    found = await PiiScanner("pii", config).scan("ask EMP-123456 or a@b.io")
    assert sorted(f.entity for f in found) == ["EMAIL_ADDRESS", "EMPLOYEE_ID"]


def test_no_pii_character_reaches_the_client_at_any_chunk_boundary() -> None:
    answer = (
        "Reach Jane at jane.doe@example.com or +1 415 555 0132, card 4111-1111-1111-1111 thanks."
    )
    secrets = ["jane.doe@example.com", "415 555 0132", "4111-1111-1111-1111"]
    scanner = PiiScanner("pii", PiiGuardrail(type="pii", action="redact"))

    async def stream(pieces: list[str]) -> str:
        out = []
        async for payload in GuardedStream(
            RequestContext("r", "POST", "/"), FakeStream(pieces), [scanner]
        ):
            out += [c["delta"].get("content") or "" for c in orjson.loads(payload)["choices"]]
        return "".join(out)

    expected = "Reach Jane at <EMAIL_ADDRESS> or <PHONE_NUMBER>, card <CREDIT_CARD> thanks."
    for cut in range(1, len(answer)):
        sent = asyncio.run(stream([answer[:cut], answer[cut:]]))
        assert sent == expected, cut
    sent = asyncio.run(stream(list(answer)))  # one character a chunk
    assert sent == expected
    assert not any(s[:5] in sent for s in secrets)


def test_every_entity_kind_streamed_char_by_char_stays_hidden() -> None:
    values = {"EMAIL_ADDRESS": "ops.team@example.org", "PHONE_NUMBER": "+44 20 7946 0958",
              "CREDIT_CARD": "4111 1111 1111 1111", "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
              "US_SSN": "078-05-1120", "IP_ADDRESS": "192.168.10.24"}  # fmt: skip
    answer = "Records: " + "; ".join(f"{k.lower()} {v}" for k, v in values.items()) + ". Done."
    scanner = PiiScanner("pii", PiiGuardrail(type="pii", action="redact"))

    async def stream(pieces: list[str]) -> list[str]:
        out = []
        async for payload in GuardedStream(
            RequestContext("r", "POST", "/"), FakeStream(pieces), [scanner]
        ):
            out += [c["delta"].get("content") or "" for c in orjson.loads(payload)["choices"]]
        return out

    sent = "".join(asyncio.run(stream(list(answer))))
    assert sent.count("<") == len(values)  # each value became one placeholder
    for value in values.values():
        assert value[:4] not in sent


def test_clean_text_flows_before_the_answer_ends() -> None:
    scanner = PiiScanner("pii", PiiGuardrail(type="pii", action="redact"))
    words = [
        "The",
        "answer",
        "is",
        "that",
        "clean",
        "words",
        "flow",
        "as",
        "soon",
        "as",
        "they",
        "are",
        "complete",
        ".",
    ]

    async def first_release() -> int:
        pieces = [w + " " for w in words]
        seen = 0
        async for payload in GuardedStream(
            RequestContext("r", "POST", "/"), FakeStream(pieces), [scanner]
        ):
            seen += 1
            if any(c["delta"].get("content") for c in orjson.loads(payload)["choices"]):
                return seen
        return seen

    # chunk 1 is the role chunk; "The " goes out with the chunk that completes it
    assert asyncio.run(first_release()) <= 3


async def test_a_replaced_scanner_and_its_cache_can_be_freed() -> None:
    """A policy reload builds new scanners: nothing global may keep the old ones."""
    import gc
    import weakref

    scanner = PiiScanner("pii", PiiGuardrail(type="pii", entities=("EMAIL_ADDRESS",)))
    assert await scanner.scan("mail a@b.io") and await scanner.scan("mail a@b.io")
    ref = weakref.ref(scanner)
    del scanner
    gc.collect()
    assert ref() is None
