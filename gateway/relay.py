"""Delivering a provider's result to the client: a JSON body, or an SSE stream that
forwards each chunk as it arrives and always ends (with `[DONE]` or an error event)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import anyio
from starlette.responses import Response, StreamingResponse

from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.providers.base import ChunkStream, Completion
from gateway.telemetry.usage import observe_chunk, observe_completion

log = logging.getLogger("gateway.relay")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"


def json_response(ctx: RequestContext, completion: Completion) -> Response:
    ctx.first_chunk_at = time.perf_counter()
    ctx.response_body = completion.body
    observe_completion(ctx, completion.body)
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
    return StreamingResponse(relay(ctx, stream), media_type="text/event-stream", headers=headers)


async def relay(ctx: RequestContext, stream: ChunkStream) -> AsyncIterator[bytes]:
    """Each upstream chunk out as one SSE event. A client disconnect cancels this
    generator where it waits; `finally` then closes the upstream request at once."""
    completed = False
    try:
        async for payload in stream:
            if ctx.first_chunk_at is None:
                ctx.first_chunk_at = time.perf_counter()
            ctx.stream_chunks.append(payload)
            forwarded = observe_chunk(ctx, payload)
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
        if not completed and ctx.error_type is None:
            ctx.client_disconnected = True
        with anyio.CancelScope(shield=True):
            await stream.aclose()
