"""A stream commits at its first real content: the role-only preamble and empty deltas
before it are held, so that an upstream that goes silent (`first_chunk_s`) or fails
before then can still be failed over invisibly. After the commit each chunk must come
within `between_chunks_s` (and the whole call within `total_s`), else the stream ends
with the in-band error event (no faked `finish_reason`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from gateway.errors import UpstreamTimeout
from gateway.providers.base import ChunkStream
from gateway.routing.triggers import ContentPolicyRefusal

TEXT = ("content", "refusal", "reasoning_content", "reasoning", "tool_calls", "function_call")


def is_content(doc: Any) -> bool:
    """A chunk that says something: text, a tool call, a finish reason, or usage alone."""
    if not isinstance(doc, dict):
        return True  # not ours to judge: the relay's check will say what is wrong with it
    choices = doc.get("choices")
    if not isinstance(choices, list):
        return True  # malformed: committed, and the relay's check ends it with the error
    if not choices:
        return doc.get("usage") is not None
    for choice in choices:
        if not isinstance(choice, dict):
            return True
        if choice.get("finish_reason") is not None or (isinstance(choice.get("text"), str) \
                and choice["text"]):  # fmt: skip
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(delta.get(k) for k in TEXT):
            return True
    return False


def refused(doc: Any) -> bool:
    choices = doc.get("choices") if isinstance(doc, dict) else None
    return (
        isinstance(choices, list)
        and bool(choices)
        and all(isinstance(c, dict) and c.get("finish_reason") == "content_filter" for c in choices)
    )


class CommittedStream:
    """The held preamble, then the rest of the upstream's chunks, each within the
    between-chunks timeout and the deadline; `on_close` runs once, at the end."""

    def __init__(self, inner: ChunkStream, rest: AsyncIterator[bytes], held: list[bytes],
                 between_s: float | None, deadline: float | None,
                 on_close: Callable[[], None]) -> None:  # fmt: skip
        self.inner, self.rest, self.held = inner, rest, held
        self.between_s, self.deadline, self.on_close = between_s, deadline, on_close
        self.headers = inner.headers
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.held:
            yield chunk
        while True:
            try:
                async with asyncio.timeout(wait_s(self.between_s, self.deadline)):
                    chunk = await anext(self.rest)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeout("the upstream stream stalled (between_chunks_s or "
                                      "total_s passed without a chunk)") from None  # fmt: skip
            yield chunk

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.on_close()
        await self.inner.aclose()


def wait_s(limit: float | None, deadline: float | None) -> float | None:
    """Seconds to wait: `limit`, or less when the deadline (the loop's clock) is nearer."""
    left = deadline - asyncio.get_running_loop().time() if deadline is not None else None
    if limit is None:
        return left
    return limit if left is None else min(limit, left)


async def commit(stream: ChunkStream, first_by: float | None, between_s: float | None,
                 deadline: float | None, refusal_fails: bool,
                 on_close: Callable[[], None]) -> CommittedStream:  # fmt: skip
    """Read up to the first content chunk (by `first_by`, on the loop's clock: the
    attempt's start + `first_chunk_s`); raise (the stream closed) if it does not come,
    so that the loop can try elsewhere."""
    rest = stream.__aiter__()
    held: list[bytes] = []
    committed = False
    try:
        async with asyncio.timeout_at(first_by):
            while True:
                try:
                    chunk = await anext(rest)
                except StopAsyncIteration:
                    break
                held.append(chunk)
                try:
                    doc = orjson.loads(chunk)
                except orjson.JSONDecodeError:
                    break  # the relay's check reports it
                if refusal_fails and refused(doc):
                    raise ContentPolicyRefusal("The upstream refused (content filter).")
                if is_content(doc):
                    break
        committed = True
    except TimeoutError:
        raise UpstreamTimeout("the upstream stream sent no content within first_chunk_s") \
            from None  # fmt: skip
    finally:
        if not committed:  # a timeout, a refusal, an upstream error or a cancel
            await stream.aclose()
    return CommittedStream(stream, rest, held, between_s, deadline, on_close)
