"""Per-request facts, gathered along the pipeline and read by logging and telemetry."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decimal import Decimal

    from gateway.cache.stage import CacheRequest
    from gateway.keys.auth import Identity
    from gateway.limits.stage import Reservation
    from gateway.telemetry.cost import Cost, TokenUse


def new_span_id() -> str:
    """Random, not secret (as OpenTelemetry's own id generator): no syscall per id."""
    return f"{random.getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


@dataclass(slots=True)
class Attempt:
    provider: str
    upstream_model: str
    status: int
    latency_s: float
    error: str | None = None
    span_id: str = ""
    started_unix: float = 0.0
    server_address: str | None = None
    server_port: int | None = None
    system: str = ""  # gen_ai.provider.name
    # how it ended: ok | retry | fallback | failed | timeout_first_chunk
    reason: str = "ok"
    backoff_s: float = 0.0  # waited before it (backoff or Retry-After)
    breaker: str = "closed"  # the target's breaker after it

    def ended(self, next_step: str) -> None:
        """What followed a failure (`retry`, `fallback`); a specific ending (a stream
        silent past first_chunk_s) keeps its own name."""
        if self.reason == "failed":
            self.reason = next_step


@dataclass(slots=True)
class RequestContext:
    request_id: str
    method: str
    path: str
    trace_id: str = field(default_factory=new_trace_id)
    parent_span_id: str | None = None  # the client's span, from its traceparent
    trace_flags: str = "01"
    tracestate: str | None = None
    span_id: str = field(default_factory=new_span_id)  # this request's SERVER span
    started: float = field(default_factory=time.perf_counter)
    started_unix: float = field(default_factory=time.time)
    operation: str | None = None
    model: str | None = None
    model_label: str = ""  # `model` as metrics label it: a policy's model, "other" or ""
    strategy: str | None = None  # the model's routing strategy
    session: str | None = None  # x-gateway-session (sticky routing)
    retry_budget_exhausted: bool = False  # a retry was refused by the model's budget
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    key_id: str | None = None
    identity: Identity | None = None  # the gateway key's identity (its limits, models...)
    team: str | None = None
    status: int = 0
    error_type: str | None = None
    first_chunk_at: float | None = None
    finished_at: float | None = None
    client_disconnected: bool = False
    shutting_down: bool = False  # cut at the drain deadline (the task is cancelled)
    task: asyncio.Task[Any] | None = None  # the request's task (the middleware's)
    cancel_on_disconnect: bool = False  # waiting on the upstream: cancel if the client goes
    client_left: bool = False  # cancelled because the client went away
    body_timed_out: bool = False  # cancelled because its body took too long
    usage: dict[str, Any] | None = None  # the upstream's `usage` object, as sent
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    end_user: str | None = None
    tags: str | None = None  # the request's `metadata`, as JSON
    client_wants_usage: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    runtime_release: Callable[[], None] | None = None

    params: dict[str, Any] = field(default_factory=dict)  # request parameters, for spans
    request_body: dict[str, Any] | None = None  # kept for token estimates, never logged
    response_body: bytes | None = None
    stream_chunks: list[bytes] = field(default_factory=list)
    tokens: TokenUse | None = None
    tokens_estimated: bool = False
    cost: Cost | None = None
    verdicts: list[Any] = field(default_factory=list)  # guardrails.chain.Verdict
    restore: dict[str, str] = field(default_factory=dict)  # reversible placeholders
    warnings: list[str] = field(default_factory=list)  # guardrails that warned
    # hit | semantic_hit | miss | refresh | bypass (None: the model has no cache);
    # verify_match | verify_mismatch | verify_error on a semantic hit's check upstream
    cache_status: str | None = None
    cache: CacheRequest | None = None  # the cache stage's state for this request
    cache_age_s: float | None = None  # a hit's entry, how old
    cache_system: str = ""  # a hit's entry: the provider system that priced it
    saved_usd: Decimal | None = None  # a hit: what the answer cost when it was fetched
    prompt_name: str | None = None  # model "prompt:NAME@REF": the prompt and its version
    prompt_version: str | None = None
    experiment: str | None = None  # the experiment that chose the version, and its arm
    arm: str | None = None
    limits: Reservation | None = None  # what the limits stage reserved (settled at the end)
    limits_degraded: bool = False  # the limit store was down and on_error let it through
    limit_refused: tuple[str, str] | None = None  # (scope kind, limit) of a 429
    budget_alerts: list[tuple[str, str, float]] = field(default_factory=list)  # crossed
    captured_input: str | None = None  # only when the policy opts in to content capture
    captured_output: str | None = None

    def upstream_headers(self, span_id: str) -> dict[str, str]:
        """Headers an upstream attempt carries: our request id, and the trace context with
        that attempt's CLIENT span as the parent."""
        headers = {
            "x-request-id": self.request_id,
            "traceparent": f"00-{self.trace_id}-{span_id}-{self.trace_flags}",
        }
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers

    @property
    def latency_s(self) -> float:
        return (self.finished_at or time.perf_counter()) - self.started
