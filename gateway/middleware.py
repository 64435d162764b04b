"""The one cross-cutting ASGI middleware: request id, per-request context, the error
boundary (the one place a `GatewayError`, a routing miss or an unexpected exception
becomes OpenAI's error JSON), and handing the finished request to the telemetry sinks.

It sits directly on Starlette's `Router`: Starlette's own `ServerErrorMiddleware` and
`ExceptionMiddleware` would add four coroutine frames that every resumption of every
request walks through, for work this class does anyway."""

from __future__ import annotations

import asyncio
import logging
import re
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.context import RequestContext, new_trace_id
from gateway.errors import (
    ClientClosedRequest,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    ServerShuttingDown,
)
from gateway.state import GatewayState

log = logging.getLogger("gateway.error")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# W3C Trace Context, section 3.3: key=value list-members, at most 32, at most 512 chars
_KEY = r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
TRACESTATE_MEMBER = re.compile(f"({_KEY})=({_VALUE})")
TRACESTATE_MAX_MEMBERS, TRACESTATE_MAX_CHARS = 32, 512


def valid_tracestate(header: str) -> str | None:
    """The header's list-members rejoined, or None when any member (or the whole) is
    invalid: a vendor's state is forwarded only as the spec allows it."""
    if len(header) > TRACESTATE_MAX_CHARS:
        return None
    members = [m.strip(" \t") for m in header.split(",")]
    members = [m for m in members if m]
    keys = set()
    for member in members:
        match = TRACESTATE_MEMBER.fullmatch(member)
        if match is None or match.group(1) in keys:
            return None
        keys.add(match.group(1))
    if not members or len(members) > TRACESTATE_MAX_MEMBERS:
        return None
    return ",".join(members)


def request_context(scope: Scope) -> RequestContext:
    request_id = traceparent = tracestate = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            request_id = value.decode("latin-1")
        elif name == b"traceparent":
            traceparent = value.decode("latin-1").strip().lower()
        elif name == b"tracestate":
            tracestate = value.decode("latin-1")
    if request_id is None or not REQUEST_ID.match(request_id):
        request_id = new_trace_id()
    ctx = RequestContext(request_id, scope["method"], scope["path"])
    if traceparent is not None and TRACEPARENT.match(traceparent):
        _, trace_id, parent, flags = traceparent.split("-")
        if trace_id != "0" * 32 and parent != "0" * 16:
            ctx.trace_id, ctx.parent_span_id, ctx.trace_flags = trace_id, parent, flags
            ctx.tracestate = valid_tracestate(tracestate) if tracestate else None
    return ctx


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = request_context(scope)
        scope["state"]["ctx"] = ctx
        state: GatewayState = scope["state"]["gateway"]
        scope["app"] = self  # Starlette's router then raises HTTPException for 404/405
        header = (b"x-request-id", ctx.request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ctx.status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                if ctx.cache_status is not None:  # answers and errors alike
                    message["headers"] += cache_headers(ctx)
                if ctx.limits is not None:  # x-ratelimit-* of a limited key
                    message["headers"] += ctx.limits.headers
                if ctx.attempts and message["status"] >= 400:  # how many upstream calls failed
                    message["headers"].append((b"x-gateway-attempts", b"%d" % len(ctx.attempts)))
            await send(message)

        task = ctx.task = asyncio.current_task()
        assert task is not None
        state.active[task] = ctx
        try:
            state.start(ctx)
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            await fail(exc, ctx, scope, send_with_id, started)
        except asyncio.CancelledError:
            if not ctx.shutting_down:
                raise
            task.uncancel()  # our own drain deadline: the request ends with its answer
            await fail(ServerShuttingDown("The gateway is shutting down."), ctx, scope,
                       send_with_id, started)  # fmt: skip
        finally:
            del state.active[task]
            ctx.finished_at = time.perf_counter()
            if ctx.runtime_release is not None:
                ctx.runtime_release()
            state.finish(ctx)


def cache_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    """`x-gateway-cache` when the model has a cache; `age` (whole seconds) on a hit."""
    headers = [(b"x-gateway-cache", (ctx.cache_status or "").encode())]
    if ctx.cache_age_s is not None:
        headers.append((b"age", b"%d" % int(ctx.cache_age_s)))
    return headers


async def fail(
    exc: Exception, ctx: RequestContext, scope: Scope, send: Send, started: bool
) -> None:
    """A GatewayError or a routing miss becomes its OpenAI error JSON; anything else is
    logged with its trace and answered with a bare 500 (never the trace)."""
    if isinstance(exc, GatewayError | HTTPException) and not started:
        error = exc if isinstance(exc, GatewayError) else routing_error(scope, exc)
        ctx.client_disconnected = isinstance(exc, ClientClosedRequest)
        if ctx.error_type is None:
            ctx.error_type = error.error_type
        await send_error(send, error)
        return
    ctx.error_type = "internal_error"
    log.error("unhandled error", exc_info=exc, extra={"fields": {"request_id": ctx.request_id}})
    if not started:
        await send_error(send, GatewayError("The server had an error processing your request."))
    elif not isinstance(exc, OSError):
        raise exc


def routing_error(scope: Scope, exc: HTTPException) -> GatewayError:
    method, path = scope["method"], scope["path"]
    if exc.status_code == 405:
        allow = {"allow": exc.headers["Allow"]} if exc.headers and "Allow" in exc.headers else {}
        return MethodNotAllowed(f"Method {method} is not allowed for {path}.", headers=allow)
    return NotFound(f"Unknown request URL: {method} {path}.")


async def send_error(send: Send, error: GatewayError) -> None:
    body = error.to_body()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
