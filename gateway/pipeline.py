"""The request path. `handle` is the table of contents: each stage, in order.

auth -> parse -> prompt resolution -> input guardrails -> cache lookup -> route
-> call provider (fallback loop) -> output guardrails -> record
"""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.cache import stage as cache
from gateway.cache import verify
from gateway.context import Attempt, RequestContext, new_span_id
from gateway.errors import GatewayError, UpstreamTimeout
from gateway.guardrails import chain as guardrails
from gateway.keys.auth import check_model
from gateway.policy.models import ModelGuardrails
from gateway.prompts import is_prompt_ref
from gateway.prompts import stage as prompts
from gateway.providers.base import (
    ChunkStream,
    Completion,
    Operation,
    UpstreamRequest,
)
from gateway.relay import json_response, sse_response, unless_client_leaves
from gateway.requests import ParsedRequest, read_request
from gateway.routing import RETRIED, Route, Target, triggers
from gateway.routing.retry import backoff_s, retry_after_s
from gateway.routing.streams import commit, refused
from gateway.runtime import Runtime
from gateway.state import GatewayState
from gateway.telemetry import tokens


async def handle(request: Request, operation: Operation) -> Response:
    state: GatewayState = request.state.gateway
    ctx: RequestContext = request.state.ctx
    runtime = bind_runtime(state, ctx)
    await authenticate(runtime, ctx, request)
    call = await read_request(request, operation, runtime.policy.server, ctx)
    if is_prompt_ref(call.model):
        resolve_prompt(runtime, ctx, call, request)
    check_model(ctx.identity, call.model)
    if runtime.limiter is not None:
        await reserve_limits(runtime, ctx, call)
    await guard_input(runtime, ctx, call)
    if (cached := await cache_lookup(state, runtime, ctx, call, request)) is not None:
        return record(state, ctx, await guard_output(runtime, ctx, cached))
    target = route(runtime, ctx, call, request)
    result = await unless_client_leaves(ctx, call_provider(ctx, runtime, target, call))
    result = await guard_output(runtime, ctx, cache.tap(ctx, result))
    return record(state, ctx, result)


def bind_runtime(state: GatewayState, ctx: RequestContext) -> Runtime:
    """Pin the policy this request runs on, so a reload mid-request changes nothing for it."""
    runtime = state.runtime
    runtime.acquire()
    ctx.runtime_release = runtime.release
    return runtime


async def authenticate(runtime: Runtime, ctx: RequestContext, request: Request) -> None:
    """The gateway key: from the policy, or made through the admin API."""
    ctx.identity = await runtime.auth.authenticate(request.headers)
    if ctx.identity is not None:
        ctx.key_id, ctx.team = ctx.identity.key_id, ctx.identity.team


def resolve_prompt(runtime: Runtime, ctx: RequestContext, call: ParsedRequest,
                   request: Request) -> None:  # fmt: skip
    """`model: "prompt:NAME@REF"`: the version a label, number or experiment picks,
    rendered with the request's variables, becomes the request (model, messages,
    parameters)."""
    prompts.resolve(runtime.prompts, runtime.experiments, ctx, call, request.headers)


async def reserve_limits(runtime: Runtime, ctx: RequestContext, call: ParsedRequest) -> None:
    """Rate limits and budgets of the key, its team and the end user (and per model in
    each): reserved now, in one atomic step; settled with the real usage when the
    request ends (`GatewayState.finish`)."""
    assert runtime.limiter is not None
    body = call.body
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    identity = ctx.identity
    team = None
    if identity is not None and identity.team and identity.team not in runtime.policy.teams:
        team = await runtime.auth.team(identity.team)  # a team made through the admin API
    await runtime.limiter.reserve(
        ctx, identity.limits if identity is not None else None, team, call.model,
        lambda: prompt_tokens(call), max_tokens if isinstance(max_tokens, int) else None,
    )  # fmt: skip


async def guard_input(runtime: Runtime, ctx: RequestContext, call: ParsedRequest) -> None:
    """The model's input guardrails, in order: block, redact (before the upstream sees
    the text), warn or log."""
    call.body = await guardrails.guard_input(
        ctx, call.body, runtime.chain(call.model, "input", key_guardrails(ctx))
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
            state, ctx, lambda v: call_provider(v, runtime, runtime.route(plain.model), plain),
            runtime.release,
        ), "cache verification")  # fmt: skip
    return found


def route(runtime: Runtime, ctx: RequestContext, call: ParsedRequest,
          request: Request) -> Route:  # fmt: skip
    """The requested model's route (404 for a model the policy does not name)."""
    ctx.model = call.model
    found = runtime.route(call.model)
    ctx.strategy = found.config.strategy
    if found.config.sticky is not None:  # (reading headers costs ~3 us: only when used)
        ctx.session = request.headers.get("x-gateway-session")
    return found


async def call_provider(ctx: RequestContext, runtime: Runtime, route: Route,
                        call: ParsedRequest) -> Completion | ChunkStream:  # fmt: skip
    """The model's own targets first (`try_route`: selection and retries); a failure they
    do not fix goes to the first fallback whose `on` names its kind, whose own targets
    are tried the same way. A client's own error (a 4xx of its making) ends it at once."""
    total_s = route.config.timeouts.total_s
    deadline = asyncio.get_running_loop().time() + total_s if total_s is not None else None
    tried = {route.model}
    while True:
        try:
            return await try_route(ctx, route, call, deadline)
        except GatewayError as exc:
            kind = triggers.trigger(exc)
            fallback = route.fallback(kind, tried) if kind is not None else None
            if fallback is None:
                raise
            if ctx.attempts:  # (none when no target of the model fit the prompt)
                ctx.attempts[-1].ended("fallback")
            tried.add(fallback)
            route = runtime.route(fallback)


async def try_route(ctx: RequestContext, route: Route, call: ParsedRequest,
                    deadline: float | None) -> Completion | ChunkStream:  # fmt: skip
    """Pick a target, try it; on an upstream failure (429, 5xx, timeout, unreachable)
    wait (backoff with full jitter, or the upstream's Retry-After) and try again, on
    another target while one is left, as often as `retry.attempts` and the retry budget
    allow. Nothing has reached the client before this returns."""
    loop = asyncio.get_running_loop()
    retry, key = route.config.retry, route.affinity_key(call.body, ctx.session)
    tokens = prompt_tokens(call) if route.limited else None
    excluded: set[Target] = set()
    failure: GatewayError | None = None
    now = loop.time()
    route.budget.request(now)
    for attempt_no in range(retry.attempts + 1):
        target = route.pick(call.operation, excluded, now if failure is None else loop.time(),
                            key, tokens)  # fmt: skip
        wait: float | None = 0.0
        if failure is not None:
            wait = retry_wait(route, failure, attempt_no, loop.time(), deadline)
            if wait is None or not route.budget.try_retry(loop.time()):
                ctx.retry_budget_exhausted |= wait is not None
                raise failure
            ctx.attempts[-1].ended("retry")
            await asyncio.sleep(wait)
        assert wait is not None
        try:
            return await attempt(ctx, route, target, call, wait, deadline)
        except GatewayError as exc:
            if triggers.trigger(exc) not in RETRIED:
                raise
            failure = exc
            excluded.add(target)
    assert failure is not None
    raise failure


def retry_wait(route: Route, failure: GatewayError, attempt_no: int, now: float,
               deadline: float | None) -> float | None:  # fmt: skip
    """How long to wait before retry `attempt_no`; None: do not retry (the upstream asks
    for longer than `max_wait_s`, or the wait would pass the deadline)."""
    config = route.config.retry
    wait = backoff_s(config, attempt_no - 1)
    asked = retry_after_s(failure.headers) if config.honor_retry_after else None
    if asked is not None:
        if asked > config.max_wait_s:
            return None
        wait = max(wait, asked)
    if deadline is not None and now + wait >= deadline:
        return None
    return wait


async def attempt(ctx: RequestContext, route: Route, target: Target, call: ParsedRequest,
                  waited: float, deadline: float | None) -> Completion | ChunkStream:  # fmt: skip
    """One call to one target; its health updated, its Attempt recorded. A stream
    returns once it has committed (its first content chunk is in)."""
    loop = asyncio.get_running_loop()
    timeouts, health = route.config.timeouts, target.health
    span_id = new_span_id()
    request = call.upstream_request(target.upstream_model, ctx.upstream_headers(span_id),
                                    timeouts.connect_s)  # fmt: skip
    first_by = earliest(deadline, loop.time() + timeouts.first_chunk_s
                        if call.stream and timeouts.first_chunk_s else None)  # fmt: skip
    started_unix, started = time.time(), time.perf_counter()
    health.started()
    try:
        if first_by is None:  # (no timeout context: ~2 us a request saved)
            result = await call_target(target, request, call.stream, route, first_by, deadline)
        else:
            async with asyncio.timeout_at(first_by):
                result = await call_target(target, request, call.stream, route, first_by,
                                           deadline)  # fmt: skip
    except asyncio.CancelledError:  # the client left (or shutdown): the call is abandoned
        health.finished()
        ctx.attempts.append(attempt_record(target, 499, started, "client_disconnected",
                                           span_id, started_unix, waited, "failed"))  # fmt: skip
        raise
    except (GatewayError, TimeoutError) as caught:
        exc = (
            caught
            if isinstance(caught, GatewayError)
            else UpstreamTimeout(f"upstream {target.name} sent no content within first_chunk_s")
        )
        health.finished()
        if triggers.trigger(exc) in RETRIED:
            health.failed(loop.time(), retry_after_s(exc.headers) if exc.status == 429 else None)
        error = "timeout_first_chunk" if isinstance(caught, TimeoutError) else exc.error_type
        reason = "timeout_first_chunk" if isinstance(caught, TimeoutError) else "failed"
        ctx.attempts.append(attempt_record(target, exc.status, started, error, span_id,
                                           started_unix, waited, reason))  # fmt: skip
        raise exc from None
    now = loop.time()
    health.latency(time.perf_counter() - started, now)
    health.succeeded(now, result.headers)
    if isinstance(result, Completion):
        health.finished()
    ctx.attempts.append(attempt_record(target, 200, started, None, span_id, started_unix,
                                       waited, "ok"))  # fmt: skip
    ctx.provider, ctx.upstream_model = target.provider.name, target.upstream_model
    return result


async def call_target(target: Target, request: UpstreamRequest, stream: bool, route: Route,
                      first_by: float | None,
                      deadline: float | None) -> Completion | ChunkStream:  # fmt: skip
    """The provider call: a whole answer, or a stream once it has committed."""
    timeouts = route.config.timeouts
    refusal_fails = route.refusal_fails
    if stream:
        upstream = await target.provider.stream(request)
        return await commit(upstream, first_by, timeouts.between_chunks_s, deadline,
                            refusal_fails, target.health.finished)  # fmt: skip
    result = await target.provider.complete(request)
    if refusal_fails and refused_completion(result):
        raise triggers.ContentPolicyRefusal("The upstream refused (content filter).")
    return result


def earliest(*deadlines: float | None) -> float | None:
    present = [d for d in deadlines if d is not None]
    return min(present) if present else None


def refused_completion(result: Completion) -> bool:
    doc = result.doc if result.doc is not None else orjson.loads(result.body)
    return isinstance(doc, dict) and refused(doc)


def prompt_tokens(call: ParsedRequest) -> int:
    """The gateway's estimate of the prompt (tiktoken), for targets with `context_length`."""
    return tokens.count(call.model, tokens.prompt_text(call.body))


def attempt_record(
    target: Target, status: int, started: float, error: str | None, span_id: str,
    started_unix: float, waited: float, reason: str,
) -> Attempt:  # fmt: skip
    elapsed = time.perf_counter() - started
    host, port = target.provider.address
    return Attempt(
        target.provider.name, target.upstream_model, status, elapsed, error, span_id, started_unix,
        host, port, target.provider.system, reason, waited, target.health.breaker.state,
    )  # fmt: skip


async def guard_output(
    runtime: Runtime, ctx: RequestContext, result: Completion | ChunkStream
) -> Completion | ChunkStream:
    """The model's output guardrails: on a whole response now, on a stream as it flows."""
    return await guardrails.guard_output(
        ctx, result, runtime.chain(ctx.model or "", "output", key_guardrails(ctx))
    )


def key_guardrails(ctx: RequestContext) -> ModelGuardrails | None:
    return ctx.identity.guardrails if ctx.identity is not None else None


def record(state: GatewayState, ctx: RequestContext, result: Completion | ChunkStream) -> Response:
    """Turn the result into the client's response. The telemetry sinks get the request
    once that response has been delivered: the middleware calls `GatewayState.finish`.
    Feedback may name the request as soon as the client has the answer: it is known
    (`recent`) before the response goes out."""
    if state.runtime.policy.feedback.metrics:
        state.recent.add(ctx)
    if isinstance(result, Completion):
        return json_response(ctx, result)
    return sse_response(ctx, result)
