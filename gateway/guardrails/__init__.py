"""Input and output guardrails: the `Guardrail` extension point.

A policy names guardrails under `guardrails:` by `type`; `GUARDRAILS` maps each type to
its implementation, and a model's `guardrails.input`/`output` lists run in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gateway.guardrails.json_schema import JsonSchemaScanner
from gateway.guardrails.scanners import DenyListScanner, Finding, LimitsScanner, SecretsScanner
from gateway.guardrails.webhook import WebhookScanner
from gateway.policy.models import GuardrailConfig


class Guardrail(Protocol):
    name: str
    action: str  # block | redact | warn | log
    on_error: str  # open | closed
    reversible: bool  # input redactions are restored in the client's answer
    judges_instructions: bool  # also scans the application's own system/developer messages

    def check_request(self, body: dict[str, Any]) -> str | None:
        """A request-level violation (limits), described; None when there is none."""

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        """Findings in `text`; `request` is the client's request body, for scanners that
        judge an answer against what was asked (JSON schema)."""

    def holdback(self, text: str) -> int:
        """Where, in a stream's pending text, output must wait until more arrives."""


def pii_scanner(name: str, config: Any) -> Guardrail:
    """presidio (and spaCy under it) loads in ~1 s: only when a policy uses `type: pii`."""
    from gateway.guardrails.pii import PiiScanner

    return PiiScanner(name, config)


def injection_scanner(name: str, config: Any) -> Guardrail:
    """onnxruntime and the encoder load only when a policy uses `type: prompt_injection`."""
    from gateway.guardrails.injection import PromptInjectionScanner

    return PromptInjectionScanner(name, config)


GUARDRAILS: dict[str, Callable[[str, Any], Guardrail]] = {
    "prompt_injection": injection_scanner,
    "secrets": SecretsScanner,
    "deny_list": DenyListScanner,
    "limits": LimitsScanner,
    "pii": pii_scanner,
    "webhook": WebhookScanner,
    "json_schema": JsonSchemaScanner,
}


def build_guardrail(name: str, config: GuardrailConfig) -> Guardrail:
    return GUARDRAILS[config.type](name, config)
