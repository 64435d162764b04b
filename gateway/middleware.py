"""The one cross-cutting ASGI middleware: request id, per-request context, the last-resort
error boundary, and handing the finished request to the telemetry sinks."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.context import RequestContext, new_trace_id
from gateway.errors import GatewayError
from gateway.state import GatewayState

log = logging.getLogger("gateway.error")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


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
            ctx.tracestate = tracestate
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
        header = (b"x-request-id", ctx.request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ctx.status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the error boundary: log the trace, never send it
            ctx.error_type = "internal_error"
            log.exception("unhandled error", extra={"fields": {"request_id": ctx.request_id}})
            if not started:
                body = GatewayError("The server had an error processing your request.").to_body()
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            elif not isinstance(exc, OSError):
                raise
        finally:
            ctx.finished_at = time.perf_counter()
            if ctx.runtime_release is not None:
                ctx.runtime_release()
            state: GatewayState = scope["state"]["gateway"]
            state.finish(ctx)
