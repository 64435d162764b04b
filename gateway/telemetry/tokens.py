"""Counting tokens when the upstream reports none, with the BPE files shipped in
`gateway/data/tiktoken` (verified by tiktoken against their sha256; never downloaded)."""

from __future__ import annotations

import os
import threading
from functools import cache
from importlib import resources
from typing import Any

import orjson
import tiktoken

from gateway.validation import listed

SHIPPED = ("o200k_base", "cl100k_base")
_lock = threading.Lock()


@cache
def encoding(name: str) -> tiktoken.Encoding:
    """Load a shipped encoding through tiktoken's own cache lookup, pointed at the package."""
    if name not in SHIPPED:
        raise KeyError(f"encoding {name!r} is not shipped with the gateway")
    folder = str(resources.files("gateway.data.tiktoken"))
    with _lock:  # TIKTOKEN_CACHE_DIR is process-wide: set it only for this call
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = folder
        try:
            return tiktoken.get_encoding(name)
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous


def preload() -> None:
    """Load the shipped encodings (~0.5 s): at startup, on a thread, so that the first
    request without upstream usage does not stall the event loop loading them."""
    for name in SHIPPED:
        encoding(name)


def encoding_for(model: str) -> tiktoken.Encoding:
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = "o200k_base"  # other vendors' models: the closest modern encoding
    return encoding(name if name in SHIPPED else "o200k_base")


def count(model: str, text: str) -> int:
    return len(encoding_for(model).encode(text, disallowed_special=()))


def prompt_text(body: dict[str, Any]) -> str:
    """The text a request sends: message contents (text parts), prompt or input."""
    parts: list[str] = []
    for message in listed(body.get("messages")):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p["text"] for p in content
                         if isinstance(p, dict) and isinstance(p.get("text"), str))  # fmt: skip
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return "\n".join(parts)


def completion_text(body: bytes) -> str:
    """The text of a whole JSON response."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return choices_text(doc, "message")


def streamed_text(chunks: list[bytes]) -> str:
    out: list[str] = []
    for chunk in chunks:
        try:
            out.append(choices_text(orjson.loads(chunk), "delta"))
        except orjson.JSONDecodeError:
            continue
    return "".join(out)


def choices_text(doc: Any, part: str) -> str:
    """The text of each choice's message (or delta, or legacy `text`), whatever else an
    upstream put there."""
    out: list[str] = []
    for choice in listed(doc.get("choices")) if isinstance(doc, dict) else ():
        if not isinstance(choice, dict):
            continue
        body = choice.get(part)
        content = body.get("content") if isinstance(body, dict) else None
        text = content if isinstance(content, str) else choice.get("text")
        if isinstance(text, str):
            out.append(text)
    return "".join(out)
