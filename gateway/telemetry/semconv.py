"""Captured content in the GenAI semantic conventions' shapes (content capture only)."""

from __future__ import annotations

import orjson

from gateway.validation import listed


def semconv_messages(captured: str) -> str:
    """OpenAI-style messages as the conventions' `gen_ai.input.messages` JSON."""
    sent = orjson.loads(captured)
    messages = []
    for message in listed(sent.get("messages")):
        content = message.get("content")
        if isinstance(content, str):
            parts = [{"type": "text", "content": content}]
        else:
            parts = [
                {"type": "text", "content": p.get("text", "")}
                for p in content or ()
                if p.get("type") == "text"
            ]
        messages.append({"role": message.get("role"), "parts": parts})
    for key in ("prompt", "input"):
        if key in sent:
            messages.append(
                {"role": "user", "parts": [{"type": "text", "content": str(sent[key])}]}
            )
    return orjson.dumps(messages).decode()
