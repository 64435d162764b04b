"""A cache entry: what the upstream said (a whole body or a stream's chunks), before output
guardrails, and what it takes to price it again and to judge a semantic neighbour."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from gateway.cache.chunks_to_completion import assemble, split

ENTRY_VERSION = 1


@dataclass(slots=True)
class Entry:
    provider: str
    upstream_model: str
    system: str  # gen_ai.provider.name: what prices the answer (saved_usd) today
    body: bytes | None = None  # a whole answer
    chunks: list[bytes] | None = None  # a stream's chunk payloads, in order
    text: str | None = None  # semantic: the user message the answer was for
    created: float = field(default_factory=time.time)

    def encode(self) -> bytes:
        return orjson.dumps({
            "v": ENTRY_VERSION, "t": self.created, "p": self.provider, "m": self.upstream_model,
            "s": self.system, "x": self.text,
            "b": self.body.decode() if self.body is not None else None,
            "c": [c.decode() for c in self.chunks] if self.chunks is not None else None,
        })  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> Entry | None:
        """None for anything this version did not write (a stale or foreign value)."""
        try:
            doc = orjson.loads(raw)
            if not isinstance(doc, dict) or doc.get("v") != ENTRY_VERSION:
                return None
            body, chunks = doc["b"], doc["c"]
            return cls(
                doc["p"], doc["m"], doc["s"],
                body.encode() if body is not None else None,
                [c.encode() for c in chunks] if chunks is not None else None,
                doc.get("x"), float(doc["t"]),
            )  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None

    def age(self, now: float | None = None) -> float:
        return max(0.0, (now or time.time()) - self.created)

    def as_body(self) -> bytes:
        if self.body is not None:
            return self.body
        return assemble(self.chunks or [])

    def as_chunks(self) -> list[bytes]:
        if self.chunks is not None:
            return self.chunks
        return split(self.body or b"{}")
