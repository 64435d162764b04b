"""Reversible redaction, the way back: placeholders the upstream saw (`<EMAIL_ADDRESS_1>`)
become the client's originals again in the answer, whole or streamed. A stream holds
back only a tail that could still be the start of a placeholder."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import orjson

from gateway.guardrails.deltas import rewrite_deltas
from gateway.providers.base import ChunkStream, Completion

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
PARTIAL = re.compile(r"<[A-Z0-9_]*$")  # an unfinished placeholder at the end of the text


def restore_text(text: str, restore: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: restore.get(m.group(0), m.group(0)), text)


def restore_completion(completion: Completion, restore: dict[str, str]) -> Completion:
    doc = orjson.loads(completion.body)
    for choice in doc.get("choices") or ():
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = restore_text(message["content"], restore)
        elif isinstance(choice.get("text"), str):
            choice["text"] = restore_text(choice["text"], restore)
    return Completion(orjson.dumps(doc), completion.headers)


class RestoringStream:
    def __init__(self, inner: ChunkStream, restore: dict[str, str]) -> None:
        self.inner = inner
        self.restore = restore
        self.headers = inner.headers
        self.longest = max(len(p) for p in restore)
        self.pending: dict[int, str] = {}

    def __aiter__(self) -> AsyncIterator[bytes]:
        return rewrite_deltas(self.inner, self.rewrite)

    async def rewrite(self, index: int, content: str, final: bool) -> str:
        ready, self.pending[index] = self.split(self.pending.get(index, "") + content, final)
        return restore_text(ready, self.restore)

    def split(self, text: str, final: bool) -> tuple[str, str]:
        partial = None if final else PARTIAL.search(text[-self.longest :])
        if partial is None:
            return text, ""
        cut = len(text) - (len(text[-self.longest :]) - partial.start())
        return text[:cut], text[cut:]

    async def aclose(self) -> None:
        await self.inner.aclose()
