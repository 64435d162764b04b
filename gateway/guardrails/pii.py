"""`type: pii`: presidio-analyzer's own recognizers and validators, run only where a cheap
candidate pass finds something that could match.

presidio's `AnalyzerEngine` runs every recognizer over the whole text (~25 ms for 2 KB
here; its phone recognizer alone ~22 ms). The entities found must stay the same, so this
scanner keeps presidio's recognizers, scores, validators and de-duplication, and only
narrows where the expensive ones look: each gets the windows around its candidates
(whole whitespace-delimited words plus one word of context either side), and the phone
recognizer only the regions that could match in each window (`phone_regions.py`).
`tests/guardrails/test_pii.py` checks parity with `AnalyzerEngine` on the labelled corpora.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import tldextract
from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    UsSsnRecognizer,
)

from gateway.guardrails.phone_regions import PrunedPhoneRecognizer
from gateway.guardrails.scanners import Finding, PolicyGuardrail, trailing_words
from gateway.policy.models import PiiGuardrail

OFFLINE_TLDS = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # bundled list only


class OfflineEmailRecognizer(EmailRecognizer):
    """presidio's email recognizer, validating TLDs against tldextract's bundled list
    instead of fetching the public suffix list at run time."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(OFFLINE_TLDS(pattern_text).fqdn != "")


# entity -> (recognizer factory, where it looks). A recognizer with a window pattern runs
# on the windows around that pattern's matches; one with a gate, on the whole text, and
# only if the gate matches somewhere; one with neither, on the whole text. Each pattern
# matches wherever the recognizer's own patterns could (a necessary condition), and is
# written to start with a literal or a single class where it can: Python's regex engine
# skips quickly to such a start.
WINDOWS, GATE = "windows", "gate"
RECOGNIZERS: dict[str, tuple[Any, tuple[str, str] | None]] = {  # presidio's classes are untyped
    "EMAIL_ADDRESS": (OfflineEmailRecognizer, (WINDOWS, r"@")),
    "PHONE_NUMBER": (PrunedPhoneRecognizer, (WINDOWS, r"\d(?:[\s().\-/]*\d){4,}")),  # 5+ digits
    # IPv4: d.d{1,3}.d{1,3}.d; IPv6: a hex digit, a colon and a hex digit or colon, or '::'
    "IP_ADDRESS": (
        IpRecognizer,
        (
            WINDOWS,
            r"[.:](?:(?<=\d\.)\d{1,3}\.\d{1,3}\.\d"
            r"|(?<=[0-9A-Fa-f]:)[0-9A-Fa-f:]|(?<=::))",
        ),
    ),
    "CREDIT_CARD": (CreditCardRecognizer, None),
    "IBAN_CODE": (IbanRecognizer, None),
    # 3-2-4 (separated by [- .] or not), 5-4 and 3-6 digits: presidio's five patterns
    "US_SSN": (UsSsnRecognizer, (GATE, r"\d{3}(?:[- .]?\d{2}[- .]?\d{4}|\d{2}-\d{4}|-\d{6})")),
    # a bitcoin address: bc1 or 1 or 3, then 25 or more of its alphabet (presidio's
    # patterns ignore case)
    "CRYPTO": (CryptoRecognizer, (GATE, r"(?i)[13][a-zA-HJ-NP-Z0-9]{25}")),
}
MAX_ENTITY_CHARS = 64  # how much of a stream's tail may still be an entity being written
WORD = re.compile(r"\S+")
ENTITY_LIKE = re.compile(r"\S*[\d@]\S*|[A-Z0-9]{2,}\W?|[-+()./:]+")


WORD_AND_NEXT = re.compile(r"\s*\S*\s*\S*")  # the rest of a word, and the next one


def reach(text: str, index: int) -> int:
    match = WORD_AND_NEXT.match(text, index)
    return match.end() if match else index


def windows(text: str, candidates: re.Pattern[str]) -> list[tuple[int, int]]:
    """Merged spans around each candidate: from its ends, over the rest of its word and
    one more word on each side (leftwards: the same pattern over the reversed text)."""
    spans: list[tuple[int, int]] = []
    reverse, size = text[::-1], len(text)
    for match in candidates.finditer(text):
        start = size - reach(reverse, size - match.start())
        end = reach(text, match.end())
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


class NerModelMissing(Exception):
    pass


def ner_model_error(guardrail: str, model: str) -> str | None:
    """Why `model` cannot be loaded (None: it can): an installed package or a directory."""
    from spacy.util import is_package

    if is_package(model) or (Path(model).expanduser() / "config.cfg").is_file():
        return None
    return (f"guardrail '{guardrail}': spaCy model '{model}' is not installed (the gateway "
            f"never downloads models): install its package, or set ner_model to a saved "
            f"pipeline directory")  # fmt: skip


class NamedEntities:
    """presidio's spaCy NLP engine and recognizer over the policy's named pipeline."""

    def __init__(self, guardrail: str, config: PiiGuardrail) -> None:
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        model = config.ner_model or ""
        problem = ner_model_error(guardrail, model)
        if problem:
            raise NerModelMissing(problem)
        self.engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        self.engine.load()
        self.entities: list[str] = list(config.ner_entities)
        self.recognizer = SpacyRecognizer(supported_entities=self.entities)

    def analyze(self, text: str) -> list[RecognizerResult]:
        artifacts = self.engine.process_text(text, "en")
        return list(self.recognizer.analyze(text, self.entities, artifacts) or [])


class PiiScanner(PolicyGuardrail):
    def __init__(self, name: str, config: PiiGuardrail) -> None:
        super().__init__(name, config)
        self.threshold = config.score_threshold
        self.recognizers: list[tuple[Any, tuple[str, re.Pattern[str]] | None]] = []
        for entity in config.entities:
            factory, narrowing = RECOGNIZERS[entity]
            where = (narrowing[0], re.compile(narrowing[1])) if narrowing else None
            options = (
                {"supported_regions": config.phone_regions} if entity == "PHONE_NUMBER" else {}
            )
            self.recognizers.append((factory(supported_language="en", **options), where))
        self.ner = NamedEntities(name, config) if config.ner_model else None
        self.custom = bool(config.custom)
        # chats resend their history: each text is scanned once (a cache per scanner, so a
        # policy reload lets the old scanner and its cache go)
        self._scan_cached = functools.lru_cache(maxsize=4096)(self._scan)
        for custom in config.custom:
            recognizer = PatternRecognizer(
                supported_entity=custom.entity,
                patterns=[Pattern(custom.entity, custom.pattern, custom.score)],
            )
            self.recognizers.append((recognizer, None))

    def check_request(self, body: dict[str, Any]) -> str | None:
        return None

    def analyze(self, text: str) -> list[RecognizerResult]:
        """presidio's results for `text`, as `AnalyzerEngine` would give them."""
        results: list[RecognizerResult] = []
        for recognizer, where in self.recognizers:
            entities = recognizer.supported_entities
            if where is None or (where[0] == GATE and where[1].search(text)):
                results += recognizer.analyze(text, entities, None) or []
            elif where[0] == WINDOWS:
                for start, end in windows(text, where[1]):
                    for result in recognizer.analyze(text[start:end], entities, None) or []:
                        result.start += start
                        result.end += start
                        results.append(result)
        if self.ner is not None:
            results += self.ner.analyze(text)
        kept = [r for r in results if r.score >= self.threshold]
        return list(EntityRecognizer.remove_duplicates(kept))

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        return list(self._scan_cached(text))

    def _scan(self, text: str) -> tuple[Finding, ...]:
        return tuple(Finding(r.start, r.end, r.entity_type) for r in self.analyze(text))

    def holdback(self, text: str) -> int:
        """Where a stream must wait: the unfinished last word, and before it the run of
        words that could belong to an entity still being written (holding a digit or
        '@', all-caps like IBAN groups, or separators), at most MAX_ENTITY_CHARS back.
        Custom patterns and named entities can look like anything: those keep the
        whole last MAX_ENTITY_CHARS."""
        floor = len(text) - MAX_ENTITY_CHARS
        if self.ner is not None or self.custom:
            return max(0, min(trailing_words(text[: floor + 1], 1), floor)) if floor > 0 else 0
        cut = trailing_words(text, 1)
        for match in reversed(list(WORD.finditer(text, max(0, floor)))):
            if match.end() > cut:
                continue
            if not ENTITY_LIKE.fullmatch(match.group()):
                break
            cut = match.start()
        return max(cut, floor, 0)
