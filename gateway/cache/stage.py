"""The cache stage of the request path: look up before routing, tap what the upstream
says, write it after the response is delivered (a task the shutdown awaits).

Statuses (`x-gateway-cache`, the row's `cache_status`): `hit`, `semantic_hit`, `miss`,
`refresh` (`Cache-Control: no-cache`: no lookup, the entry rewritten), `bypass` (not
eligible, `no-cache, no-store`, or the store unavailable).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.cache import Cache, Lookup, namespace_id
from gateway.cache.entry import Entry
from gateway.cache.key import deterministic, exact_key, last_user_text, partition_key
from gateway.cache.store import StoreUnavailable
from gateway.context import RequestContext
from gateway.providers.base import ChunkStream, Completion
from gateway.requests import ParsedRequest
from gateway.tasks import TaskOwner

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("gateway.cache")
HITS = frozenset({"hit", "semantic_hit"})
MAX_AGE = re.compile(r"max-age\s*=\s*\"?(\d+)")


@dataclass(frozen=True, slots=True)
class Directives:
    no_cache: bool = False
    no_store: bool = False
    max_age_s: float | None = None


def directives(header: str | None) -> Directives:
    """The request's `Cache-Control` (RFC 9111 request directives the cache honours)."""
    if not header:
        return Directives()
    tokens = {t.strip().split("=", 1)[0].lower() for t in header.split(",")}
    age = MAX_AGE.search(header.lower())
    return Directives("no-cache" in tokens, "no-store" in tokens,
                      float(age.group(1)) if age else None)  # fmt: skip


@dataclass(slots=True)
class CacheRequest:
    """One request's use of its cache: where it looks, and what it will write."""

    cache: Cache
    lookup: Lookup
    write: bool
    body: bytes | None = None  # the upstream's whole answer, before output guardrails
    chunks: list[bytes] = field(default_factory=list)  # or its stream, as it flowed
    complete: bool = False  # the stream ended normally (not abandoned, no error event)
    found: Entry | None = None  # a hit's entry (for verification)


def plan(runtime: Runtime, ctx: RequestContext, call: ParsedRequest,
         cache_control: str | None) -> CacheRequest | None:  # fmt: skip
    """Where this request may look and write; None (status set) when it may not."""
    cache = runtime.cache_for(call.model)
    if cache is None:
        return None
    wanted = directives(cache_control)
    eligible = cache.config.eligible == "all" or deterministic(call.operation, call.body)
    if not eligible or (wanted.no_cache and wanted.no_store):
        ctx.cache_status = "bypass"
        return None
    key = ctx.identity
    namespace = namespace_id((key.cache_namespace or key.key_id) if key is not None else "")
    config_hash = runtime.model_config_hash(call.model)
    lookup = Lookup(namespace, exact_key(namespace, call.operation, call.model, config_hash,
                                         call.body), wanted.max_age_s)  # fmt: skip
    if cache.config.type == "semantic":
        lookup.text = last_user_text(call.operation, call.body)
        if lookup.text is not None:
            digest = partition_key(namespace, call.operation, call.model, config_hash, call.body)
            lookup.partition = f"{namespace}:{digest}"
    request = CacheRequest(cache, lookup, write=not wanted.no_store)
    ctx.cache_status = "refresh" if wanted.no_cache else None
    return request


async def lookup(runtime: Runtime, ctx: RequestContext, call: ParsedRequest,
                 cache_control: str | None) -> Completion | ChunkStream | None:  # fmt: skip
    """A stored answer for this request, as a body or a replayed stream; None to go on."""
    request = plan(runtime, ctx, call, cache_control)
    if request is None:
        return None
    ctx.cache = request
    if ctx.cache_status == "refresh":
        return None
    try:
        found = await request.cache.lookup(request.lookup)
    except StoreUnavailable:
        ctx.cache_status, ctx.cache = "bypass", None
        return None
    if found is None:
        ctx.cache_status = "miss"
        request.cache.counts["miss"] += 1
        return None
    entry = request.found = found.entry
    ctx.cache_status = "hit" if found.similarity is None else "semantic_hit"
    request.cache.counts[ctx.cache_status] += 1
    request.write = False
    ctx.cache_age_s = entry.age()
    ctx.provider, ctx.upstream_model, ctx.cache_system = (
        entry.provider, entry.upstream_model, entry.system,
    )  # fmt: skip
    if call.stream:
        return ReplayStream(entry.as_chunks())
    return Completion(entry.as_body())


def should_verify(ctx: RequestContext) -> bool:
    request = ctx.cache
    return (ctx.cache_status == "semantic_hit" and request is not None
            and random.random() < request.cache.config.verify_fraction)  # fmt: skip


class ReplayStream:
    """A stored stream (or a whole answer split) as a ChunkStream, chunk for chunk."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.headers: dict[str, str] = {}

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        return None


class TapStream:
    """The upstream's stream as it flows, copied for the cache (before output guardrails)."""

    def __init__(self, inner: ChunkStream, request: CacheRequest) -> None:
        self.inner, self.request = inner, request
        self.headers = inner.headers

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.request.chunks.append(chunk)
            yield chunk
        self.request.complete = True

    async def aclose(self) -> None:
        await self.inner.aclose()


def tap(ctx: RequestContext, result: Completion | ChunkStream) -> Completion | ChunkStream:
    """Keep what the upstream said for the write after the response (if one is due)."""
    request = ctx.cache
    if request is None or not request.write:
        return result
    if isinstance(result, Completion):
        request.body, request.complete = result.body, True
        return result
    return TapStream(result, request)


def commit(tasks: TaskOwner, ctx: RequestContext) -> None:
    """After the response: write the entry when the answer is one worth keeping."""
    request = ctx.cache
    if request is None or not request.write or not request.complete:
        return
    if ctx.status != 200 or ctx.error_type is not None or ctx.client_disconnected:
        return
    if "length" in ctx.finish_reasons and not request.cache.config.store_truncated:
        return
    if not ctx.attempts:
        return
    system = ctx.attempts[-1].system
    entry = Entry(ctx.provider or "", ctx.upstream_model or "", system,
                  request.body, request.chunks if request.body is None else None,
                  request.lookup.text, time.time())  # fmt: skip
    if not request.cache.store_now(request.lookup, entry):  # memory: in place, no task
        tasks.spawn(request.cache.store_entry(request.lookup, entry), "cache write")
