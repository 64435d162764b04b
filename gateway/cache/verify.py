"""The live false-hit rate: a share (`verify_fraction`) of semantic hits is also asked
upstream after the client has its answer, and the two answers compared: tool calls and
JSON documents exactly, text by embedding similarity. The check is a request-log row of
its own (`cache_status` verify_match | verify_mismatch | verify_error, its cost
included) and a count in `gateway.cache.verifications`."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from gateway.cache.response_cache import SemanticCache
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.providers.base import ChunkStream, Completion
from gateway.telemetry.usage import observe_completion

if TYPE_CHECKING:
    from gateway.state import GatewayState

log = logging.getLogger("gateway.cache")
ANSWER_SIMILARITY = 0.9  # two texts at least this close (cosine) answer the same way
Fetch = Callable[[RequestContext], Awaitable[Completion | ChunkStream]]


def answer_of(body: bytes) -> tuple[str, Any]:
    """The first choice as what is compared: ("tools", calls), ("json", doc) or ("text", s)."""
    doc = orjson.loads(body)
    choice = (doc.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = message.get("tool_calls")
    if calls:
        return "tools", [(c.get("function", {}).get("name"), parsed(c.get("function", {})
                          .get("arguments"))) for c in calls]  # fmt: skip
    text = message.get("content") if "message" in choice else choice.get("text")
    text = text if isinstance(text, str) else ""
    document = parsed(text)
    if isinstance(document, dict | list):
        return "json", document
    return "text", text.strip()


def parsed(text: Any) -> Any:
    try:
        return orjson.loads(text) if isinstance(text, str) else text
    except orjson.JSONDecodeError:
        return text


async def answers_match(cache: SemanticCache, cached: bytes, fresh: bytes) -> bool:
    (kind_a, a), (kind_b, b) = answer_of(cached), answer_of(fresh)
    if kind_a != kind_b:
        return False
    if kind_a != "text" or a == b:
        return bool(a == b)
    assert cache.embedder is not None
    vectors = await cache.embedder.embed_many([a, b])
    return float(np.dot(vectors[0], vectors[1])) >= ANSWER_SIMILARITY


async def check(state: GatewayState, hit: RequestContext, fetch: Fetch,
                release: Callable[[], None]) -> None:  # fmt: skip
    """Never raises: a failed check is a `verify_error` row. `release` lets go of the
    policy the check ran on (held so that a reload does not close its providers)."""
    try:
        await _check(state, hit, fetch)
    finally:
        release()


async def _check(state: GatewayState, hit: RequestContext, fetch: Fetch) -> None:
    request = hit.cache
    assert request is not None and request.found is not None
    cache, entry = request.cache, request.found
    ctx = RequestContext(f"{hit.request_id}-verify", hit.method, hit.path, trace_id=hit.trace_id)
    ctx.operation, ctx.model, ctx.key_id = hit.operation, hit.model, hit.key_id
    try:
        result = await fetch(ctx)
        assert isinstance(result, Completion)
        ctx.status, ctx.response_body = 200, result.body
        observe_completion(ctx, result.body, result.doc)
        same = isinstance(cache, SemanticCache) and await answers_match(
            cache, entry.as_body(), result.body
        )
        ctx.cache_status = "verify_match" if same else "verify_mismatch"
    except GatewayError as exc:
        ctx.status, ctx.error_type, ctx.cache_status = exc.status, exc.error_type, "verify_error"
    except (ValueError, TypeError, KeyError, AttributeError, AssertionError):
        log.exception("semantic hit verification failed")  # an answer not shaped as expected
        ctx.status, ctx.cache_status = 500, "verify_error"
    ctx.finished_at = time.perf_counter()
    cache.counts[ctx.cache_status] += 1
    state.finish(ctx)
