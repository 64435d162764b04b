"""`type: webhook`: a user's HTTP service rules on the text, within a timeout; when it
fails or times out, `on_error` decides (closed: block, open: pass)."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.guardrails.scanners import Finding, PolicyGuardrail
from gateway.policy.models import WebhookGuardrail
from gateway.providers.transport import HttpTransport

WEBHOOK_CONNECTIONS = 100


class WebhookError(Exception):
    """The webhook failed or answered nonsense: the chain applies `on_error`."""


class WebhookScanner(PolicyGuardrail):
    def __init__(self, name: str, config: WebhookGuardrail) -> None:
        super().__init__(name, config)
        self.config = config
        self.client = httpx.AsyncClient(
            transport=HttpTransport(WEBHOOK_CONNECTIONS),
            timeout=config.timeout_s,
            headers=config.headers,
        )

    def check_request(self, body: dict[str, Any]) -> str | None:
        return None

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        payload = {"guardrail": self.name, "text": text}
        try:
            response = await self.client.post(self.config.url, json=payload)
            response.raise_for_status()
            verdict = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WebhookError(f"webhook {self.name} failed: {type(exc).__name__}") from exc
        if not isinstance(verdict, dict) or not verdict.get("flagged"):
            return []
        findings = verdict.get("findings") or [{"start": 0, "end": len(text), "entity": "FLAGGED"}]
        try:
            return [
                Finding(int(f["start"]), int(f["end"]), str(f.get("entity", "FLAGGED")))
                for f in findings
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise WebhookError(f"webhook {self.name} sent malformed findings") from exc

    def holdback(self, text: str) -> int:
        return 0  # a remote service rules on whole texts: a stream waits for its end

    async def aclose(self) -> None:
        await self.client.aclose()
