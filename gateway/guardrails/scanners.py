"""Text scanners: each finds spans (`Finding`s) and says how much of a growing stream's
tail it must still see before it can rule on it (`holdback`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import regex

from gateway.policy.models import (
    DenyListGuardrail,
    GuardrailBase,
    LimitsGuardrail,
    SecretsGuardrail,
)
from gateway.telemetry import tokens
from gateway.validation import listed


class PolicyGuardrail:
    """What every guardrail takes from its policy entry."""

    judges_instructions = True

    def __init__(self, name: str, config: GuardrailBase) -> None:
        self.name: str = name
        self.action: str = config.action
        self.on_error: str = config.on_error
        self.reversible: bool = config.reversible


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    entity: str


def trailing_words(text: str, words: int) -> int:
    """Where a stream must wait for a match of up to `words` words: the word still being
    written (if the text does not end in whitespace) and the `words - 1` before it."""
    index = len(text)
    while index > 0 and not text[index - 1].isspace():
        index -= 1  # the unfinished last word
    for _ in range(words - 1):
        index = len(text[:index].rstrip())
        while index > 0 and not text[index - 1].isspace():
            index -= 1
    return index


SECRET_PATTERNS = {
    "OPENAI_API_KEY": r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
    "ANTHROPIC_API_KEY": r"\bsk-ant-[A-Za-z0-9_-]{20,}",
    "AWS_ACCESS_KEY_ID": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "GITHUB_TOKEN": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})",
    "SLACK_TOKEN": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "STRIPE_KEY": r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{20,}",
    "JWT": r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "PRIVATE_KEY": r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
}


class SecretsScanner(PolicyGuardrail):
    """API keys and tokens (OpenAI, Anthropic, AWS, GitHub, Slack, Stripe, JWT) and PEM
    private keys. A stream holds back only a tail that could still become one: the
    `regex` module's partial matching says where (a word like "sure" goes out at once;
    "sk-pr", a token that could grow, or an unfinished PEM block waits)."""

    def __init__(self, name: str, config: SecretsGuardrail) -> None:
        super().__init__(name, config)
        # one pattern for scans and holdback (`regex` scans this one ~3x faster than `re`)
        combined = "|".join(f"(?P<{e}>{p})" for e, p in SECRET_PATTERNS.items())
        self._pattern = regex.compile(combined, regex.DOTALL)

    def check_request(self, body: dict[str, Any]) -> str | None:
        return None

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        return [
            Finding(m.start(), m.end(), m.lastgroup or "SECRET")
            for m in self._pattern.finditer(text)
        ]

    def holdback(self, text: str) -> int:
        """Where the first match that reaches the end starts: a partial one (more text
        could complete it) or a whole one (more text could extend it, or undo a final
        `\\b`). Released text is scanned on its own, so a cut inside a word can make its
        continuation look like a token's start: that over-redacts, never leaks."""
        for match in self._pattern.finditer(text, partial=True):
            if match.end() == len(text):
                return int(match.start())
        return len(text)


class DenyListScanner(PolicyGuardrail):
    """Keywords and phrases (case-insensitive, whole words) and regular expressions."""

    def __init__(self, name: str, config: DenyListGuardrail) -> None:
        super().__init__(name, config)
        parts = [rf"\b{re.escape(k)}\b" for k in config.keywords] + [
            f"(?:{p})" for p in config.patterns
        ]
        self._pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None
        self._words = max((len(k.split()) for k in config.keywords), default=1)

    def check_request(self, body: dict[str, Any]) -> str | None:
        return None

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        if self._pattern is None:
            return []
        return [Finding(m.start(), m.end(), "DENIED") for m in self._pattern.finditer(text)]

    def holdback(self, text: str) -> int:
        return trailing_words(text, self._words)


class LimitsScanner(PolicyGuardrail):
    """Request-level limits: input tokens (tiktoken), messages, requested output tokens."""

    def __init__(self, name: str, config: LimitsGuardrail) -> None:
        super().__init__(name, config)
        self.config = config

    def check_request(self, body: dict[str, Any]) -> str | None:
        config = self.config
        messages = listed(body.get("messages"))
        if config.max_messages is not None and len(messages) > config.max_messages:
            return f"{len(messages)} messages (limit {config.max_messages})"
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        limit = config.max_output_tokens
        if limit is not None and isinstance(requested, int) and requested > limit:
            return f"max_tokens {requested} (limit {limit})"
        if config.max_input_tokens is not None:
            count = tokens.count(str(body.get("model", "")), tokens.prompt_text(body))
            if count > config.max_input_tokens:
                return f"{count} input tokens (limit {config.max_input_tokens})"
        return None

    def cap_output(self, body: dict[str, Any]) -> None:
        """A request that names no output limit gets `max_output_tokens` as its own, so
        that the limit bounds every generation, not only those that ask for more."""
        limit = self.config.max_output_tokens
        if limit is None or body.get("max_completion_tokens") or body.get("max_tokens"):
            return
        if "messages" in body:
            body["max_completion_tokens"] = limit
        elif "prompt" in body:
            body["max_tokens"] = limit

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        return []

    def holdback(self, text: str) -> int:
        return len(text)
