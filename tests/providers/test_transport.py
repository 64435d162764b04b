"""The upstream transport: the gateway's lean `send`, and the same pool as an httpx
transport under `httpx.AsyncClient`, against the mock upstream on a real socket."""

import asyncio
import gzip

import httpx
import orjson
import pytest
from aiohttp import web

from benchmarks.mock_upstream import Behavior, MockUpstream, free_port
from gateway.providers.transport import HttpTransport

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}


def test_as_httpx_transport_buffered_and_streamed(mock: MockUpstream) -> None:
    async def run() -> tuple[httpx.Response, list[bytes]]:
        async with httpx.AsyncClient(transport=HttpTransport(4), base_url=mock.base_url) as client:
            whole = await client.post(
                "/v1/chat/completions", json=CHAT, headers={"x-request-id": "abc"}
            )
            chunks: list[bytes] = []
            body = {**CHAT, "stream": True}
            async with client.stream("POST", "/v1/chat/completions", json=body) as streamed:
                assert streamed.status_code == 200
                chunks = [chunk async for chunk in streamed.aiter_bytes()]
            return whole, chunks

    whole, chunks = asyncio.run(run())
    assert whole.status_code == 200
    assert whole.json()["choices"][0]["message"]["content"] == "Hello! How can I help you today?"
    assert whole.headers["content-type"].startswith("application/json")
    assert whole.request.url.path == "/v1/chat/completions"
    events = b"".join(chunks).split(b"\n\n")
    assert events[-2] == b"data: [DONE]"
    assert orjson.loads(events[0].removeprefix(b"data: "))["object"] == "chat.completion.chunk"
    seen = mock.requests[0]
    assert seen.headers["x-request-id"] == "abc" and seen.body == CHAT


def test_upstream_error_status_is_returned_not_raised(mock: MockUpstream) -> None:
    mock.behave("m", Behavior(status=429, error={"error": {"message": "slow down"}}))

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=HttpTransport(1)) as client:
            return await client.post(f"{mock.base_url}/v1/chat/completions", json=CHAT)

    response = asyncio.run(run())
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "slow down"


@pytest.mark.parametrize(
    ("behavior", "error"),
    [(Behavior(reset=True), httpx.RemoteProtocolError), (Behavior(delay_s=2), httpx.ReadTimeout)],
)
def test_failures_raise_httpx_exceptions(
    mock: MockUpstream, behavior: Behavior, error: type[Exception]
) -> None:
    mock.behave("m", behavior)

    async def run() -> None:
        timeout = httpx.Timeout(0.3)
        async with httpx.AsyncClient(transport=HttpTransport(1), timeout=timeout) as client:
            await client.post(f"{mock.base_url}/v1/chat/completions", json=CHAT)

    with pytest.raises(error):
        asyncio.run(run())


def test_unreachable_upstream_is_a_connect_error() -> None:
    async def run() -> None:
        async with httpx.AsyncClient(transport=HttpTransport(1)) as client:
            await client.post(f"http://127.0.0.1:{free_port()}/v1/chat/completions", json=CHAT)

    with pytest.raises(httpx.ConnectError):
        asyncio.run(run())


def test_compressed_answer_reaches_an_httpx_client_decoded_once() -> None:
    """The transport decompresses; the httpx response must not try again."""
    payload = orjson.dumps({"flagged": False, "note": "x" * 2000})

    async def answer(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(payload),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    async def run() -> httpx.Response:
        app = web.Application()
        app.router.add_post("/", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with httpx.AsyncClient(transport=HttpTransport(1)) as client:
                return await client.post(f"http://127.0.0.1:{port}/", json={})
        finally:
            await runner.cleanup()

    response = asyncio.run(run())
    assert response.status_code == 200 and response.content == payload
    assert "content-encoding" not in response.headers
