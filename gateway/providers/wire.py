"""What a well-formed OpenAI answer looks like, checked where untrusted bytes come in.

An upstream that answers 200 with a body that is not an OpenAI response (an HTML page
from a proxy, truncated JSON, a `choices` that is not a list, binary garbage in an SSE
event) must not reach the client as a success: `check_completion` and `check_chunk`
raise `UpstreamInvalidResponse` (502 `upstream_invalid_response`), which the fallback
loop treats as the upstream's failure and the relay turns into a stream's error event.
Only the shape the gateway and the client's SDK rely on is checked; other fields pass.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import UpstreamInvalidResponse

LISTS = {"chat": "choices", "completions": "choices", "embeddings": "data"}


def parse(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamInvalidResponse(f"the upstream's {what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise UpstreamInvalidResponse(f"the upstream's {what} is not a JSON object")
    return doc


def not_error(doc: dict[str, Any], what: str) -> dict[str, Any]:
    """A 2xx that carries OpenAI's error object (some proxies answer so) is no answer."""
    if isinstance(doc.get("error"), dict):
        raise UpstreamInvalidResponse(f"the upstream's {what} is an error")
    return doc


def check_completion(operation: str, raw: bytes) -> dict[str, Any]:
    """A whole response: a JSON object whose `choices` (or `data`) is a list of objects."""
    doc = not_error(parse(raw, "response"), "response")
    key = LISTS.get(operation, "choices")
    items = doc.get(key)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise UpstreamInvalidResponse(f"the upstream's response has no valid '{key}' list")
    if key == "choices":
        for choice in items:
            check_choice(choice, "message")
    return doc


def check_chunk(raw: bytes) -> dict[str, Any]:
    """One stream event's data: a JSON object; `choices`, when present, a list of objects
    whose delta is an object with string (or null) content."""
    doc = not_error(parse(raw, "stream event"), "stream event")
    choices = doc.get("choices")
    if choices is not None:
        if not isinstance(choices, list):
            raise UpstreamInvalidResponse("the upstream's stream event has a non-list 'choices'")
        for choice in choices:
            if not isinstance(choice, dict):
                raise UpstreamInvalidResponse("the upstream's stream event has an invalid choice")
            check_choice(choice, "delta")
    usage = doc.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise UpstreamInvalidResponse("the upstream's stream event has an invalid 'usage'")
    return doc


def check_choice(choice: dict[str, Any], part: str) -> None:
    body = choice.get(part)
    if body is not None:
        if not isinstance(body, dict):
            raise UpstreamInvalidResponse(f"the upstream's choice has an invalid '{part}'")
        content = body.get("content")
        if content is not None and not isinstance(content, str | list):
            raise UpstreamInvalidResponse(f"the upstream's {part} has invalid content")
    text = choice.get("text")
    if text is not None and not isinstance(text, str):
        raise UpstreamInvalidResponse("the upstream's choice has invalid text")
    reason = choice.get("finish_reason")
    if reason is not None and not isinstance(reason, str):
        raise UpstreamInvalidResponse("the upstream's choice has an invalid finish_reason")
    index = choice.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise UpstreamInvalidResponse("the upstream's choice has an invalid index")
