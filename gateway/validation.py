"""Checks of the request fields the gateway itself reads, with OpenAI's types, ranges and
messages (`invalid_type`, `invalid_value`, `..._above_max_value`, ...). Every other field
passes through untouched; the upstream judges it.

Pure functions over the parsed body: each raises `InvalidRequest` naming the parameter.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest
from gateway.prompts import is_prompt_ref

ROLES = ("system", "user", "assistant", "tool", "function", "developer")
MAX_DEPTH = 254  # the deepest orjson serialises (it parses deeper): refused past it
MAX_STOPS = 4

# name -> (kind, low, high): the numeric fields whose ranges OpenAI documents
NUMBERS: dict[str, tuple[str, float | None, float | None]] = {
    "max_tokens": ("integer", 1, None),
    "max_completion_tokens": ("integer", 1, None),
    "n": ("integer", 1, 128),
    "temperature": ("number", 0, 2),
    "top_p": ("number", 0, 1),
    "presence_penalty": ("number", -2, 2),
    "frequency_penalty": ("number", -2, 2),
    "seed": ("integer", None, None),
    "top_logprobs": ("integer", 0, 20),
    "best_of": ("integer", 0, 20),
    "dimensions": ("integer", 1, None),
}
CHAT_ONLY = ("max_completion_tokens", "top_logprobs")
COMPLETIONS_ONLY = ("best_of",)
EMBEDDINGS = ("dimensions",)
BOOLEANS = ("stream", "logprobs", "parallel_tool_calls", "echo", "store")
SCALARS = frozenset(NUMBERS) | frozenset(BOOLEANS)
TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a decimal number", str: "a string",
              list: "an array", dict: "an object", type(None): "null"}  # fmt: skip


def listed(value: Any) -> list[Any]:
    """A field read as a list (messages, tools...) wherever the operation does not check
    it: anything else reads as empty, never as an error in the reader."""
    return value if isinstance(value, list) else []


def got(value: Any) -> str:
    return TYPE_NAMES.get(type(value), "a value of another type")


def invalid_type(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {got(value)} instead.",
        param=param,
        code="invalid_type",
    )


def check_fields(body: dict[str, Any], operation: str) -> None:
    """The fields the gateway reads (routing, limits, usage, telemetry), OpenAI's way.
    Only the fields present are looked at (a typical body has two or three of them)."""
    for name in body.keys() & SCALARS:
        value = body[name]
        if value is None:
            continue
        if name in NUMBERS:
            kind, low, high = NUMBERS[name]
            if applies(name, operation):
                check_number(name, value, kind, low, high)
        elif not isinstance(value, bool):
            raise invalid_type(name, "a boolean", value)
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise invalid_type("stream_options", "an object", options)
        usage = options.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise invalid_type("stream_options.include_usage", "a boolean", usage)
    if "stop" in body:
        check_stop(body["stop"])
    for name in ("user", "prompt_cache_key"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise invalid_type(name, "a string", value)
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid_type("metadata", "an object", metadata)
    if operation == "chat":
        messages = body.get("messages")
        if not (is_prompt_ref(body.get("model")) and messages in (None, [])):  # prompt's own
            check_messages(messages)
        for name in ("tools", "functions"):
            if body.get(name) is not None and not isinstance(body[name], list):
                raise invalid_type(name, "an array", body[name])
        if body.get("response_format") is not None and not isinstance(
            body["response_format"], dict
        ):
            raise invalid_type("response_format", "an object", body["response_format"])
    elif operation == "embeddings":
        fmt = body.get("encoding_format")
        if fmt is not None and fmt not in ("float", "base64"):
            raise invalid_value("encoding_format", fmt, ("float", "base64"))


def applies(name: str, operation: str) -> bool:
    if name in EMBEDDINGS:
        return operation == "embeddings"
    if operation == "embeddings":
        return False
    if name in CHAT_ONLY:
        return operation == "chat"
    return name not in COMPLETIONS_ONLY or operation == "completions"


def check_number(name: str, value: Any, kind: str, low: float | None, high: float | None) -> None:
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid_type(name, "an integer", value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(name, "a number", value)
    word = "integer" if kind == "integer" else "decimal"
    if low is not None and value < low:
        raise InvalidRequest(
            f"Invalid '{name}': {word} below minimum value. Expected a value >= {fmt(low)}, "
            f"but got {value} instead.",
            param=name,
            code=f"{word}_below_min_value",
        )
    if high is not None and value > high:
        raise InvalidRequest(
            f"Invalid '{name}': {word} above maximum value. Expected a value <= {fmt(high)}, "
            f"but got {value} instead.",
            param=name,
            code=f"{word}_above_max_value",
        )


def fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise invalid_type("stop", "a string or an array of strings", stop)
    if len(stop) > MAX_STOPS:
        raise InvalidRequest(
            f"Invalid 'stop': array too long. Expected an array with maximum length "
            f"{MAX_STOPS}, but got an array with length {len(stop)} instead.",
            param="stop",
            code="array_above_max_length",
        )


def invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> InvalidRequest:
    supported = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
    shown = value if isinstance(value, str) else got(value)
    return InvalidRequest(
        f"Invalid value: '{shown}'. Supported values are: {supported}.",
        param=param,
        code="invalid_value",
    )


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise InvalidRequest(
                f"Missing required parameter: 'messages[{i}].role'.",
                param=f"messages[{i}].role",
                code="missing_required_parameter",
            )
        if role not in ROLES:
            raise invalid_value(f"messages[{i}].role", role, ROLES)
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise invalid_type(
                f"messages[{i}].content", "one of a string or array of objects", content
            )


def check_depth(body: Any, raw: bytes) -> None:
    """Refuse what cannot be serialised again: orjson parses far deeper than it writes
    (MAX_DEPTH levels), and the body is written again for the upstream. A body with
    fewer brackets than that cannot be that deep (counted at C speed, ~1 us for 10 KB);
    past the count, serialising it is the test (C speed too, no Python walk)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    try:
        orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise InvalidRequest(
            f"The request body is nested more than {MAX_DEPTH} levels deep.",
            code="nesting_too_deep",
        ) from None
