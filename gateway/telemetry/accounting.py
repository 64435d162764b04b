"""Settling a finished request's tokens and cost, once, before the sinks see it:
provider-reported usage first, else a tiktoken count marked as estimated."""

from __future__ import annotations

import logging
from decimal import Decimal

import orjson

from gateway.context import RequestContext
from gateway.policy.models import PriceConfig
from gateway.telemetry import tokens
from gateway.telemetry.cost import Cost, Pricing, TokenUse
from gateway.telemetry.usage import token_counts

log = logging.getLogger("gateway.telemetry")
HITS = frozenset({"hit", "semantic_hit"})
ZERO = Decimal(0)


def settle(
    ctx: RequestContext, pricing: Pricing, price: PriceConfig | None, capture: bool = False
) -> None:
    """Never raises (telemetry never raises into a request): what fails is logged and the
    row goes without it."""
    try:
        if capture:
            capture_content(ctx)
        ctx.tokens = reported(ctx) or estimated(ctx)
        system = ctx.attempts[-1].system if ctx.attempts else ctx.cache_system
        if ctx.tokens is not None and (ctx.attempts or ctx.cache_system) and ctx.upstream_model:
            ctx.cost = pricing.cost(system, ctx.upstream_model, ctx.tokens, price)
        if ctx.cost is not None and ctx.cache_status in HITS:  # a hit costs nothing today
            ctx.saved_usd = ctx.cost.total
            ctx.cost = Cost(ZERO, ZERO, ZERO, ctx.cost.source)
    except Exception:
        log.exception("could not settle tokens and cost",
                      extra={"fields": {"request_id": ctx.request_id}})  # fmt: skip
    ctx.request_body = ctx.response_body = None  # done with them
    ctx.stream_chunks = []


def reported(ctx: RequestContext) -> TokenUse | None:
    counts = token_counts(ctx.usage)
    if counts["input"] is None and counts["output"] is None:
        return None
    return TokenUse(
        counts["input"] or 0, counts["output"] or 0, counts["cached_input"] or 0, 0,
        counts["reasoning"] or 0,
    )  # fmt: skip


def estimated(ctx: RequestContext) -> TokenUse | None:
    """Counted with tiktoken when a response was delivered without usage."""
    if ctx.status != 200 or ctx.request_body is None or not ctx.upstream_model:
        return None
    if ctx.response_body is None and not ctx.stream_chunks:
        return None
    model = ctx.upstream_model
    prompt = tokens.count(model, tokens.prompt_text(ctx.request_body))
    if ctx.response_body is not None:
        output_text = tokens.completion_text(ctx.response_body)
    else:
        output_text = tokens.streamed_text(ctx.stream_chunks)
    output = tokens.count(model, output_text) if ctx.operation != "embeddings" else 0
    ctx.tokens_estimated = True
    return TokenUse(prompt, output)


def capture_content(ctx: RequestContext) -> None:
    """The request's messages (or prompt/input) as JSON, and the answer's text."""
    body = ctx.request_body
    if body is None:
        return
    sent = {k: body[k] for k in ("messages", "prompt", "input") if k in body}
    ctx.captured_input = orjson.dumps(sent).decode()
    if ctx.response_body is not None:
        ctx.captured_output = tokens.completion_text(ctx.response_body)
    elif ctx.stream_chunks:
        ctx.captured_output = tokens.streamed_text(ctx.stream_chunks)
