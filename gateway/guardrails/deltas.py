"""Rewriting the content deltas of an OpenAI chunk stream, choice by choice: what the
guarded stream (scan, redact, hold back) and the restoring stream (placeholders back
to originals) share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import orjson

from gateway.providers.base import ChunkStream
from gateway.providers.wire import check_chunk

# (choice index, the delta's text, whether the choice finishes here) -> text to send
Rewrite = Callable[[int, str, bool], Awaitable[str]]


async def rewrite_deltas(inner: ChunkStream, rewrite: Rewrite) -> AsyncIterator[bytes]:
    """Chunks without content or a finish pass untouched (no JSON round trip)."""
    async for payload in inner:
        doc = check_chunk(payload)  # garbage ends the stream here (502 error event)
        touched = False
        for choice in doc.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            final = choice.get("finish_reason") is not None
            if isinstance(content, str) or final:
                out = await rewrite(choice.get("index", 0), content or "", final)
                if isinstance(content, str) or out:
                    delta["content"] = out
                    choice["delta"] = delta
                touched = True
        yield orjson.dumps(doc) if touched else payload
