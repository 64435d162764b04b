"""A finished request as request-log rows: plain tuples, built on the event loop in a
few microseconds and written later by the DuckDB writer thread."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.context import RequestContext
from gateway.guardrails.chain import summarize

Row = tuple[Any, ...]


def request_row(ctx: RequestContext) -> Row:
    end = ctx.finished_at if ctx.finished_at is not None else ctx.started
    latency = (end - ctx.started) * 1000
    ttfb = (ctx.first_chunk_at - ctx.started) * 1000 if ctx.first_chunk_at else None
    upstream = sum(a.latency_s for a in ctx.attempts) * 1000 if ctx.attempts else None
    if upstream is not None and ctx.stream and ctx.first_chunk_at is not None:
        upstream += (end - ctx.first_chunk_at) * 1000  # the stream's body came from upstream too
    tokens = ctx.tokens
    cost = ctx.cost
    return (
        ctx.request_id, ctx.trace_id, int(ctx.started_unix * 1_000_000), latency, ttfb, upstream,
        latency - upstream if upstream is not None else None,
        ctx.method, ctx.path, ctx.operation, ctx.stream, ctx.model, ctx.provider,
        ctx.upstream_model, ctx.response_model, ctx.response_id, ctx.status, ctx.error_type,
        ",".join(ctx.finish_reasons) or None,
        tokens.input if tokens else None, tokens.output if tokens else None,
        tokens.cached_input if tokens else None, tokens.reasoning if tokens else None,
        ctx.key_id, ctx.end_user, ctx.client_disconnected, len(ctx.attempts),
        ctx.span_id, tokens.cache_write if tokens else None, ctx.tokens_estimated,
        str(cost.total) if cost else None, str(cost.input) if cost else None,
        str(cost.output) if cost else None, cost.source if cost else None,
        ctx.cache_status, guardrail_json(ctx), ctx.prompt_name, ctx.prompt_version, ctx.tags,
        ctx.cache_age_s,
        str(ctx.saved_usd) if ctx.saved_usd is not None else None, ctx.strategy,
        f"{ctx.provider}/{ctx.upstream_model}" if ctx.provider else None,
        ctx.experiment, ctx.arm, ctx.team,
    )  # fmt: skip


def attempt_rows(ctx: RequestContext) -> list[Row]:
    """Rows for requests that took retries or fallbacks, or whose one attempt failed: a
    single successful attempt is already the request row (provider, model, upstream_ms)."""
    if len(ctx.attempts) == 1 and ctx.attempts[0].error is None:
        return []
    return [
        (ctx.request_id, i, a.provider, a.upstream_model, a.status, a.latency_s * 1000, a.error,
         a.reason, a.backoff_s * 1000, a.breaker)
        for i, a in enumerate(ctx.attempts, 1)
    ]  # fmt: skip


def content_rows(ctx: RequestContext) -> list[Row]:
    if ctx.captured_input is None and ctx.captured_output is None:
        return []
    started = int(ctx.started_unix * 1_000_000)
    return [(ctx.request_id, started, ctx.captured_input, ctx.captured_output)]


def guardrail_json(ctx: RequestContext) -> str | None:
    if not ctx.verdicts:
        return None
    return orjson.dumps(
        [{k: v for k, v in s.items() if k != "start"} for s in summarize(ctx.verdicts)]
    ).decode()
