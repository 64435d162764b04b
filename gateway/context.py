"""Per-request facts, gathered along the pipeline and read by logging and telemetry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Attempt:
    provider: str
    upstream_model: str
    status: int
    latency_s: float
    error: str | None = None


@dataclass(slots=True)
class RequestContext:
    request_id: str
    method: str
    path: str
    traceparent: str | None = None
    tracestate: str | None = None
    started: float = field(default_factory=time.perf_counter)
    started_unix: float = field(default_factory=time.time)
    operation: str | None = None
    model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    key_id: str | None = None
    status: int = 0
    error_type: str | None = None
    first_chunk_at: float | None = None
    finished_at: float | None = None
    client_disconnected: bool = False
    usage: dict[str, Any] | None = None  # the upstream's `usage` object, as sent
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    end_user: str | None = None
    client_wants_usage: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    runtime_release: Callable[[], None] | None = None

    def upstream_headers(self) -> dict[str, str]:
        """Headers every upstream request carries: our request id and the trace context."""
        headers = {"x-request-id": self.request_id}
        if self.traceparent:
            headers["traceparent"] = self.traceparent
            if self.tracestate:
                headers["tracestate"] = self.tracestate
        return headers

    @property
    def latency_s(self) -> float:
        return (self.finished_at or time.perf_counter()) - self.started
