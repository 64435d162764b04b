"""SSEResponse: a client going away stops the relay at once, even while the upstream is
silent; a finished stream is never cancelled afterwards."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.types import Message

from gateway.relay import SSEResponse


def test_disconnect_while_the_upstream_is_silent_stops_the_relay_at_once() -> None:
    closed: list[str] = []
    sent: list[Message] = []
    gone = asyncio.Event()

    async def silent_upstream() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            await asyncio.sleep(60)  # the upstream says nothing for a minute
            yield b"data: 2\n\n"
        finally:
            closed.append("upstream")

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body") == b"data: 1\n\n":
            asyncio.get_running_loop().call_later(0.05, gone.set)

    async def run() -> int:
        response = SSEResponse(silent_upstream(), media_type="text/event-stream")
        await asyncio.wait_for(response({"type": "http"}, receive, send), timeout=5)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0.01)  # a cancel still pending would land here
        return task.cancelling()

    assert asyncio.run(run()) == 0
    assert closed == ["upstream"]
    assert [m.get("body") for m in sent] == [None, b"data: 1\n\n"]


def test_a_finished_stream_is_not_cancelled_by_the_disconnect_that_follows() -> None:
    sent: list[Message] = []
    done = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"data: {n}\n\n".encode()

    async def receive() -> dict[str, Any]:
        await done.wait()  # as uvicorn: once the response is complete, receive says so
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("more_body") is False:
            done.set()

    async def run() -> str:
        await SSEResponse(chunks())({"type": "http"}, receive, send)
        await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        return "still running"

    assert asyncio.run(run()) == "still running"
    assert [m.get("body") for m in sent[1:]] == [
        b"data: 0\n\n",
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"",
    ]
