"""A ChunkStream of OpenAI chunks made from text pieces, for guarded-stream tests."""

from collections.abc import AsyncIterator

import orjson


def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


class FakeStream:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.headers: dict[str, str] = {}

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        for piece in self.pieces:
            yield chunk({"content": piece})
        yield chunk({}, "stop")

    async def aclose(self) -> None:
        return None
