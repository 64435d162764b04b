"""Delivering a provider's result to the client: a JSON body, or an SSE stream that
forwards each chunk as it arrives and always ends (with `[DONE]` or an error event)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.context import RequestContext
from gateway.errors import ClientClosedRequest, GatewayError, ServerShuttingDown
from gateway.providers.base import ChunkStream, Completion
from gateway.telemetry.usage import observe_chunk, observe_completion

log = logging.getLogger("gateway.relay")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"
T = TypeVar("T")


def json_response(ctx: RequestContext, completion: Completion) -> Response:
    ctx.first_chunk_at = time.perf_counter()
    ctx.response_body = completion.body
    observe_completion(ctx, completion.body, completion.doc)
    headers = {**completion.headers, **warning_header(ctx)}
    return Response(completion.body, media_type="application/json", headers=headers)


def warning_header(ctx: RequestContext) -> dict[str, str]:
    """Guardrails whose action is `warn` and that found something, by name."""
    return (
        {"x-gateway-guardrail-warnings": ",".join(dict.fromkeys(ctx.warnings))}
        if ctx.warnings
        else {}
    )


def sse_response(ctx: RequestContext, stream: ChunkStream) -> Response:
    headers = {**stream.headers, **SSE_HEADERS, **warning_header(ctx)}
    return SSEResponse(relay(ctx, stream), media_type="text/event-stream", headers=headers)


class SSEResponse(StreamingResponse):
    """Starlette's StreamingResponse, minus its anyio task group (~50 us a stream, some of
    it before the first chunk): the response streams in the request's own task, and one
    plain asyncio task waits for the client to go away and then cancels it, so the relay
    stops (and closes the upstream request) at once, even while the upstream is silent."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None
        ctx: RequestContext | None = scope.get("state", {}).get("ctx")
        state = {"finished": False, "cancelled": False}

        def on_disconnect(watcher: asyncio.Task[None]) -> None:
            if not watcher.cancelled() and not state["finished"]:
                state["cancelled"] = True
                streaming.cancel()

        watcher = asyncio.create_task(wait_for_disconnect(receive))
        watcher.add_done_callback(on_disconnect)
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})  # fmt: skip
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            state["finished"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if ctx is not None and ctx.shutting_down and not state["finished"]:  # drain deadline
                streaming.uncancel()
                await end_for_shutdown(ctx, send)
            elif not state["cancelled"]:
                raise
            else:
                streaming.uncancel()  # our own cancel, on disconnect: ends normally
        finally:
            state["finished"] = True
            watcher.cancel()
            await aclose(self.body_iterator)


async def unless_client_leaves(ctx: RequestContext, work: Awaitable[T]) -> T:
    """Await `work` (an upstream call, a local generation) so that a client going away
    cancels it (the upstream request closed, the generation stopped) and it ends as
    ClientClosedRequest, as a stream's relay does. The server protocol sees the
    connection go (`gateway.server.cancel_abandoned`); here it costs two attribute writes."""
    ctx.cancel_on_disconnect = True
    try:
        return await work
    except asyncio.CancelledError:
        if not ctx.client_left or ctx.task is None:
            raise
        ctx.task.uncancel()
        raise ClientClosedRequest("The client closed the connection before the answer.") from None
    finally:
        ctx.cancel_on_disconnect = False


async def end_for_shutdown(ctx: RequestContext, send: Send) -> None:
    """A stream still running at the drain deadline: the OpenAI-style error event, then
    the end of the response, so the client sees why it stopped."""
    error = ServerShuttingDown("The gateway is shutting down; the stream was ended.")
    ctx.error_type = error.error_type
    ctx.client_disconnected = False
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b"data: " + error.to_body() + b"\n\n",
                    "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def aclose(iterator: object) -> None:
    """Close the relay generator now (not when it is collected): its `finally` closes the
    upstream request."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def relay(ctx: RequestContext, stream: ChunkStream) -> AsyncIterator[bytes]:
    """Each upstream chunk out as one SSE event. A client disconnect cancels this
    generator where it waits; `finally` then closes the upstream request at once."""
    completed = False
    try:
        async for payload in stream:
            if ctx.first_chunk_at is None:
                ctx.first_chunk_at = time.perf_counter()
            forwarded = observe_chunk(ctx, payload)  # raises on a malformed chunk
            ctx.stream_chunks.append(payload)
            if forwarded is not None:
                yield b"data: " + forwarded + b"\n\n"
        completed = True
        yield DONE
    except GatewayError as exc:
        ctx.error_type = exc.error_type
        log.warning(
            "upstream stream failed: %s",
            exc.message,
            extra={"fields": {"request_id": ctx.request_id}},
        )
        yield b"data: " + exc.to_body() + b"\n\n"
    finally:
        if not completed and ctx.error_type is None and not ctx.shutting_down:
            ctx.client_disconnected = True
        with anyio.CancelScope(shield=True):
            await stream.aclose()
