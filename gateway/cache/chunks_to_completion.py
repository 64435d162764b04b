"""Translating between a streamed answer (OpenAI chunk payloads) and a whole one, both
ways, so that a streamed entry serves a plain request and the reverse. Pure functions.

`assemble` concatenates each choice's text deltas (content, refusal, reasoning), builds
tool calls from their fragments by index, and keeps the usage chunk's usage. `split`
writes a whole answer as the chunks OpenAI would send: the role, the text, each tool
call whole, the finish reason, then the usage chunk.
"""

from __future__ import annotations

from typing import Any

import orjson

TEXT_DELTAS = ("content", "refusal", "reasoning_content", "reasoning")


def assemble(chunks: list[bytes]) -> bytes:
    """A chat or text completion's chunks as the one JSON body a plain request gets."""
    docs = [orjson.loads(c) for c in chunks]
    head = next((d for d in docs if d.get("choices")), docs[0] if docs else {})
    chat = str(head.get("object", "")).startswith("chat")
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for doc in docs:
        if doc.get("usage"):
            usage = doc["usage"]
        for choice in doc.get("choices") or ():
            index = choice.get("index", 0)
            into = choices.setdefault(index, new_choice(index, chat))
            (add_delta if chat else add_text)(into, choice)
    out: dict[str, Any] = {
        "id": head.get("id"), "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created"), "model": head.get("model"),
        "choices": [finish(choices[i], chat) for i in sorted(choices)],
    }  # fmt: skip
    if head.get("system_fingerprint") is not None:
        out["system_fingerprint"] = head["system_fingerprint"]
    if usage is not None:
        out["usage"] = usage
    return orjson.dumps(out)


def new_choice(index: int, chat: bool) -> dict[str, Any]:
    if chat:
        return {"index": index, "message": {"role": "assistant", "content": None},
                "finish_reason": None, "logprobs": None, "_tools": {}}  # fmt: skip
    return {"index": index, "text": "", "finish_reason": None, "logprobs": None}


def add_delta(into: dict[str, Any], choice: dict[str, Any]) -> None:
    delta = choice.get("delta") or {}
    message = into["message"]
    for key, value in delta.items():
        if key in TEXT_DELTAS and isinstance(value, str):
            message[key] = (message.get(key) or "") + value
        elif key == "tool_calls" and isinstance(value, list):
            for part in value:
                add_tool_call(into["_tools"], part)
        elif key not in TEXT_DELTAS and key != "tool_calls" and value is not None:
            message[key] = value
    add_common(into, choice)


def add_tool_call(tools: dict[int, dict[str, Any]], part: dict[str, Any]) -> None:
    call = tools.setdefault(part.get("index", len(tools)), {
        "id": None, "type": "function", "function": {"name": "", "arguments": ""}})  # fmt: skip
    if part.get("id"):
        call["id"] = part["id"]
    if part.get("type"):
        call["type"] = part["type"]
    function = part.get("function") or {}
    for key in ("name", "arguments"):
        if isinstance(function.get(key), str):
            call["function"][key] += function[key]


def add_text(into: dict[str, Any], choice: dict[str, Any]) -> None:
    if isinstance(choice.get("text"), str):
        into["text"] += choice["text"]
    add_common(into, choice)


def add_common(into: dict[str, Any], choice: dict[str, Any]) -> None:
    if choice.get("finish_reason") is not None:
        into["finish_reason"] = choice["finish_reason"]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        held = into["logprobs"] or {}
        for key, value in logprobs.items():
            held[key] = (held.get(key) or []) + value if isinstance(value, list) else value
        into["logprobs"] = held


def finish(choice: dict[str, Any], chat: bool) -> dict[str, Any]:
    if chat:
        tools = choice.pop("_tools")
        if tools:
            choice["message"]["tool_calls"] = [tools[i] for i in sorted(tools)]
        choice["message"].setdefault("refusal", None)
    return choice


def split(body: bytes) -> list[bytes]:
    """A whole chat or text completion as the chunks a stream of it would have been."""
    doc = orjson.loads(body)
    chat = doc.get("object") == "chat.completion"
    head = {"id": doc.get("id"), "object": "chat.completion.chunk" if chat else "text_completion",
            "created": doc.get("created"), "model": doc.get("model")}  # fmt: skip
    if doc.get("system_fingerprint") is not None:
        head["system_fingerprint"] = doc["system_fingerprint"]
    chunks: list[dict[str, Any]] = []
    for choice in doc.get("choices") or ():
        index = choice.get("index", 0)
        parts = chat_parts(choice) if chat else [{"text": choice.get("text") or ""}]
        for part in parts:
            chunks.append({**head, "choices": [{"index": index, **part, "finish_reason": None}]})
        last: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
        last.update(index=index, logprobs=None, finish_reason=choice.get("finish_reason"))
        chunks.append({**head, "choices": [last]})
    if doc.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": doc["usage"]})
    return [orjson.dumps(c) for c in chunks]


def chat_parts(choice: dict[str, Any]) -> list[dict[str, Any]]:
    message = choice.get("message") or {}
    empty = "" if isinstance(message.get("content"), str) else None  # as OpenAI's first chunk
    parts: list[dict[str, Any]] = [{"delta": {"role": message.get("role", "assistant"),
                                              "content": empty}}]  # fmt: skip
    for key in TEXT_DELTAS:
        if isinstance(message.get(key), str) and message[key]:
            parts.append({"delta": {key: message[key]}})
    for i, call in enumerate(message.get("tool_calls") or ()):
        parts.append({"delta": {"tool_calls": [{"index": i, **call}]}})
    if choice.get("logprobs") is not None:
        parts[-1]["logprobs"] = choice["logprobs"]
    return parts
