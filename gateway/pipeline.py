"""The request path. `handle` is the table of contents: each stage, in order.

auth -> parse -> prompt resolution -> input guardrails -> cache lookup -> route
-> call provider (fallback loop) -> output guardrails -> record
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response

from gateway.cache import stage as cache
from gateway.cache import verify
from gateway.context import Attempt, RequestContext, new_span_id
from gateway.errors import GatewayError
from gateway.guardrails import chain as guardrails
from gateway.providers.base import (
    ChunkStream,
    Completion,
    Operation,
    UnsupportedOperation,
)
from gateway.relay import json_response, sse_response, unless_client_leaves
from gateway.requests import ParsedRequest, read_request
from gateway.runtime import Runtime, Target
from gateway.state import GatewayState


async def handle(request: Request, operation: Operation) -> Response:
    state: GatewayState = request.state.gateway
    ctx: RequestContext = request.state.ctx
    runtime = bind_runtime(state, ctx)
    ctx.key_id = runtime.keys.authenticate(request.headers)
    call = await read_request(request, operation, runtime.policy.server, ctx)
    resolve_prompt(runtime, call)
    await guard_input(runtime, ctx, call)
    if (cached := await cache_lookup(state, runtime, ctx, call, request)) is not None:
        return record(ctx, await guard_output(runtime, ctx, cached))
    targets = route(runtime, ctx, call)
    result = await unless_client_leaves(ctx, call_provider(ctx, targets, call))
    result = await guard_output(runtime, ctx, cache.tap(ctx, result))
    return record(ctx, result)


def bind_runtime(state: GatewayState, ctx: RequestContext) -> Runtime:
    """Pin the policy this request runs on, so a reload mid-request changes nothing for it."""
    runtime = state.runtime
    runtime.acquire()
    ctx.runtime_release = runtime.release
    return runtime


def resolve_prompt(runtime: Runtime, call: ParsedRequest) -> None:
    """Prompt templates and versions: no policy key for them yet, so requests pass as sent."""


async def guard_input(runtime: Runtime, ctx: RequestContext, call: ParsedRequest) -> None:
    """The model's input guardrails, in order: block, redact (before the upstream sees
    the text), warn or log."""
    call.body = await guardrails.guard_input(
        ctx, call.body, runtime.chain(call.model, "input", ctx.key_id)
    )


async def cache_lookup(
    state: GatewayState, runtime: Runtime, ctx: RequestContext, call: ParsedRequest,
    request: Request,
) -> Completion | ChunkStream | None:  # fmt: skip
    """The model's cache, if it has one: a stored answer (output guardrails still run on
    it), or None. A share of semantic hits (`verify_fraction`) is also asked upstream, in
    the background, to measure how often a semantic hit was wrong."""
    if not runtime.policy.caches:
        return None
    found = await cache.lookup(runtime, ctx, call, request.headers.get("cache-control"))
    if found is not None and cache.should_verify(ctx):
        body = {k: v for k, v in call.body.items() if k not in ("stream", "stream_options")}
        plain = ParsedRequest(call.operation, body, call.model, stream=False)
        runtime.acquire()  # its providers stay open until the check is done
        state.tasks.spawn(verify.check(
            state, ctx, lambda v: call_provider(v, route(runtime, v, plain), plain),
            runtime.release,
        ), "cache verification")  # fmt: skip
    return found


def route(runtime: Runtime, ctx: RequestContext, call: ParsedRequest) -> list[Target]:
    ctx.model = call.model
    return runtime.targets(call.model)


async def call_provider(
    ctx: RequestContext, targets: list[Target], call: ParsedRequest
) -> Completion | ChunkStream:
    """Try each target in order; move on only when the failure is the upstream's
    (unreachable, timeout, 429, 5xx) and nothing has reached the client yet."""
    failure: GatewayError | None = None
    for target in targets:
        if not target.provider.supports(call.operation):
            continue
        span_id = new_span_id()
        request = call.upstream_request(target.upstream_model, ctx.upstream_headers(span_id))
        started_unix, started = time.time(), time.perf_counter()
        try:
            if call.stream:
                result: Completion | ChunkStream = await target.provider.stream(request)
            else:
                result = await target.provider.complete(request)
        except asyncio.CancelledError:  # the client left (or shutdown): the call is abandoned
            ctx.attempts.append(
                attempt(target, 499, started, "client_disconnected", span_id, started_unix)
            )
            raise
        except GatewayError as exc:
            ctx.attempts.append(
                attempt(target, exc.status, started, exc.error_type, span_id, started_unix)
            )
            if not retryable(exc):
                raise
            failure = exc
            continue
        ctx.attempts.append(attempt(target, 200, started, None, span_id, started_unix))
        ctx.provider, ctx.upstream_model = target.provider.name, target.upstream_model
        return result
    raise failure or UnsupportedOperation(
        f"model {call.model!r} does not support {call.operation}", param="model"
    )


def attempt(
    target: Target,
    status: int,
    started: float,
    error: str | None,
    span_id: str,
    started_unix: float,
) -> Attempt:
    elapsed = time.perf_counter() - started
    host, port = target.provider.address
    return Attempt(
        target.provider.name, target.upstream_model, status, elapsed, error, span_id, started_unix,
        host, port, target.provider.system,
    )  # fmt: skip


def retryable(exc: GatewayError) -> bool:
    return exc.status == 429 or exc.status >= 500


async def guard_output(
    runtime: Runtime, ctx: RequestContext, result: Completion | ChunkStream
) -> Completion | ChunkStream:
    """The model's output guardrails: on a whole response now, on a stream as it flows."""
    return await guardrails.guard_output(
        ctx, result, runtime.chain(ctx.model or "", "output", ctx.key_id)
    )


def record(ctx: RequestContext, result: Completion | ChunkStream) -> Response:
    """Turn the result into the client's response. The telemetry sinks get the request
    once that response has been delivered: the middleware calls `GatewayState.finish`."""
    if isinstance(result, Completion):
        return json_response(ctx, result)
    return sse_response(ctx, result)
