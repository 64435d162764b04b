"""OpenAI Chat Completions <-> Anthropic Messages: pure translation functions, no I/O.

`to_upstream` turns a chat request into a Messages request; `from_upstream` turns a
Messages response into a `chat.completion`; `StreamTranslator` turns Messages stream
events into `chat.completion.chunk`s; `error_from_upstream` maps Anthropic's errors.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.errors import InvalidRequest, error_body

DEFAULT_MAX_TOKENS = 4096
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_exceeded",
    "api_error": "api_error",
    "overloaded_error": "api_error",
}
Json = dict[str, Any]


# ---------------------------------------------------------------- request


def to_upstream(body: Json) -> Json:
    """A Chat Completions request as an Anthropic Messages request."""
    if body.get("n", 1) != 1:
        raise InvalidRequest("this model's provider supports only n=1", param="n")
    system, messages = _messages(body.get("messages") or [])
    out: Json = {"model": body["model"], "messages": messages}
    if system:
        out["system"] = system
    out["max_tokens"] = (
        body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    )
    for key in ("temperature", "top_p", "top_k", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("tools"):
        out["tools"] = [_tool(t) for t in body["tools"] if t.get("type") == "function"]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice and out.get("tools"):
        out["tool_choice"] = choice
    return out


def _messages(messages: list[Json]) -> tuple[list[Json], list[Json]]:
    system: list[Json] = []
    out: list[Json] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content")))
            continue
        if role == "tool":
            blocks: list[Json] = [_tool_result(message)]
            role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(message)
        else:
            blocks = _content_blocks(message.get("content"))
            role = "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # Anthropic wants roles to alternate
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _text_blocks(content: Any) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [{"type": "text", "text": p["text"]} for p in content or [] if p.get("type") == "text"]


def _content_blocks(content: Any) -> list[Json]:
    if content is None or isinstance(content, str):
        return [{"type": "text", "text": content or ""}]
    blocks: list[Json] = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            blocks.append(_image(part["image_url"]))
    return blocks


def _image(image_url: Any) -> Json:
    url = image_url["url"] if isinstance(image_url, dict) else str(image_url)
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _assistant_blocks(message: Json) -> list[Json]:
    blocks = [b for b in _text_blocks(message.get("content")) if b["text"]]
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                "tool call arguments must be a JSON object", param="messages"
            ) from None
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments}
        )
    return blocks


def _tool_result(message: Json) -> Json:
    content = message.get("content")
    return {
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id", ""),
        "content": content if isinstance(content, str) else _text_blocks(content),
    }


def _tool(tool: Json) -> Json:
    function = tool["function"]
    out: Json = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    if choice is None and parallel is None:
        return None
    if isinstance(choice, dict):
        out: Json = {"type": "tool", "name": choice.get("function", {}).get("name", "")}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(str(choice), "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


# ---------------------------------------------------------------- response


def usage_from_upstream(usage: Json) -> Json:
    """Anthropic counts cached input apart; OpenAI's prompt_tokens includes it."""
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + read + write
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read},
    }


def from_upstream(message: Json, created: int | None = None) -> Json:
    """An Anthropic Messages response as a `chat.completion`."""
    text = "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": orjson.dumps(b.get("input", {})).decode()},
        }
        for b in message.get("content", [])
        if b.get("type") == "tool_use"
    ]
    reply: Json = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": message.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": usage_from_upstream(message.get("usage", {})),
    }


def error_from_upstream(status: int, raw: bytes) -> tuple[bytes, str]:
    """`{"type": "error", "error": {"type", "message"}}` as OpenAI's error body."""
    try:
        parsed = orjson.loads(raw)
        err = parsed["error"]
        message = str(err["message"])
        etype = ERROR_TYPES.get(str(err.get("type")), "api_error")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace").strip()[:500] or f"upstream returned HTTP {status}"
        etype = "api_error"
    return error_body(message, etype, None, etype), message


# ---------------------------------------------------------------- streaming


class StreamTranslator:
    """Anthropic stream events in, `chat.completion.chunk` dicts out (stateful, pure)."""

    def __init__(self, include_usage: bool, created: int | None = None) -> None:
        self.include_usage = include_usage
        self.created = created if created is not None else int(time.time())
        self.id = ""
        self.model = ""
        self.usage: Json = {}
        self.tool_index: dict[int, int] = {}  # content block index -> tool_calls index
        self.finished = False

    def feed(self, event: str, data: Json) -> list[Json]:
        handler = getattr(self, "_on_" + event, None)
        return handler(data) if handler is not None else []

    def _chunk(self, delta: Json, finish_reason: str | None = None) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def _on_message_start(self, data: Json) -> list[Json]:
        message = data.get("message", {})
        self.id, self.model = message.get("id", ""), message.get("model", "")
        self.usage = dict(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: Json) -> list[Json]:
        block = data.get("content_block", {})
        if block.get("type") == "tool_use":
            index = self.tool_index[data["index"]] = len(self.tool_index)
            call = {
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": ""},
            }
            return [self._chunk({"tool_calls": [{"index": index, **call}]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _on_content_block_delta(self, data: Json) -> list[Json]:
        delta = data.get("delta", {})
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta" and data.get("index") in self.tool_index:
            call = {
                "index": self.tool_index[data["index"]],
                "function": {"arguments": delta.get("partial_json", "")},
            }
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _on_message_delta(self, data: Json) -> list[Json]:
        self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        reason = data.get("delta", {}).get("stop_reason")
        if reason is None:
            return []
        self.finished = True
        return [self._chunk({}, FINISH_REASONS.get(reason, "stop"))]

    def _on_message_stop(self, data: Json) -> list[Json]:
        if not self.include_usage:
            return []
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = usage_from_upstream(self.usage)
        return [chunk]
