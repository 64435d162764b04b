"""Input and output guardrails: the `Guardrail` extension point.

A policy names guardrails by `type`; `GUARDRAILS` maps each type to its
implementation. The pipeline runs a model's chains in order; with none configured
both stages pass the request through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.context import RequestContext


@dataclass(frozen=True, slots=True)
class Verdict:
    guardrail: str
    action: str  # "pass" | "block" | "redact" | "warn" | "log"
    detail: str = ""


class Guardrail(Protocol):
    name: str

    async def check_input(self, ctx: RequestContext, body: dict[str, Any]) -> Verdict: ...

    async def check_output(self, ctx: RequestContext, body: dict[str, Any]) -> Verdict: ...


GUARDRAILS: dict[str, type[Guardrail]] = {}
