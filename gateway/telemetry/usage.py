"""Reading what a response says about itself (id, model, finish reasons, token usage)
without slowing its delivery. Pure functions over response bytes."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.context import RequestContext
from gateway.providers.wire import check_chunk


def observe_completion(ctx: RequestContext, body: bytes, doc: Any = None) -> None:
    """A whole JSON response: take its id, model, finish reasons and usage (`doc`: the
    body already parsed, by the provider's check)."""
    if doc is None:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
    if isinstance(doc, dict):
        _take(ctx, doc)


def _take(ctx: RequestContext, doc: dict[str, Any]) -> None:
    if ctx.response_id is None:
        ctx.response_id = doc.get("id") if isinstance(doc.get("id"), str) else None
        ctx.response_model = doc.get("model") if isinstance(doc.get("model"), str) else None
    for choice in doc.get("choices") or ():
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if isinstance(reason, str):
            ctx.finish_reasons.append(reason)
    if isinstance(doc.get("usage"), dict):
        ctx.usage = doc["usage"]


def observe_chunk(ctx: RequestContext, payload: bytes) -> bytes | None:
    """One stream chunk: record what it says; return what the client gets (None: nothing).

    The gateway asks every upstream for usage; a client that did not ask gets neither the
    final usage chunk nor the `"usage": null` OpenAI adds to the other chunks.
    """
    doc = check_chunk(payload)  # every chunk is read: no byte shortcut is right for every
    _take(ctx, doc)  # spelling of valid JSON (whitespace, key order, escapes)
    if ctx.client_wants_usage or "usage" not in doc:
        return payload
    if doc["usage"] is not None and not doc.get("choices"):
        return None
    del doc["usage"]
    return orjson.dumps(doc)


def token_counts(usage: dict[str, Any] | None) -> dict[str, int | None]:
    """OpenAI's usage object as the columns the request log keeps."""
    if not usage:
        return {"input": None, "output": None, "cached_input": None, "reasoning": None}
    details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return {
        "input": count(usage.get("prompt_tokens", usage.get("input_tokens"))),
        "output": count(usage.get("completion_tokens", usage.get("output_tokens"))),
        "cached_input": count(details.get("cached_tokens")) if isinstance(details, dict) else None,
        "reasoning": count(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else None,
    }


def count(value: Any) -> int | None:
    """A token count as an upstream may spell it; anything but a non-negative integer
    (a string, a float, a bool, a negative number) is no count."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
