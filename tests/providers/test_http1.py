"""The upstream HTTP/1.1 client against raw servers on real loopback sockets, each
answering with exact bytes: reuse, limits, framing, decoding, timeouts, endings."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme

from gateway.providers import http1
from gateway.providers.http1 import Timeouts
from gateway.providers.transport import HttpTransport, UpstreamResponse, parse_url

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FAST = Timeouts(connect=2, read=2, pool=2)
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            self.closed.set()
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@asynccontextmanager
async def server(handler: Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter],
                                   Awaitable[None]]) -> AsyncIterator[tuple[Server, str]]:  # fmt: skip
    box: list[Server] = []

    async def bound(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handler(box[0], reader, writer)

    box.append(Server(bound))
    tcp = await asyncio.start_server(box[0].serve, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        yield box[0], f"http://127.0.0.1:{port}/v1/chat?x=1"
    finally:
        tcp.close()


async def keep_answering(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while True:
        await s.read_request(reader)
        w.write(OK)
        await w.drain()


async def post(transport: HttpTransport, url: str, *, buffered: bool = True,
               headers: dict[str, str] | None = None,
               timeouts: Timeouts = FAST) -> UpstreamResponse:  # fmt: skip
    return await transport.send("POST", parse_url(url), b'{"a":1}', headers or {}, timeouts,
                                buffered=buffered)  # fmt: skip


async def test_request_bytes_and_keep_alive_reuse() -> None:
    async with server(keep_answering) as (s, url):
        transport = HttpTransport(4)
        for _ in range(3):
            response = await post(transport, url, headers={"x-request-id": "r1"})
            assert response.status_code == 200 and response.content == b"{}"
            assert response.headers == {"content-type": "application/json"}
        await transport.aclose()
    assert s.connections == 1
    head, body = s.requests[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat?x=1 HTTP/1.1"
    assert b"x-request-id: r1" in lines and b"content-length: 7" in lines
    assert lines[1].startswith(b"host: 127.0.0.1:") and body == b'{"a":1}'


async def test_connections_stay_within_the_limit_and_waiters_get_them() -> None:
    async def slow(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            await asyncio.sleep(0.05)
            w.write(OK)
            await w.drain()

    async with server(slow) as (s, url):
        transport = HttpTransport(2)
        responses = await asyncio.gather(*[post(transport, url) for _ in range(6)])
        await transport.aclose()
    assert [r.status_code for r in responses] == [200] * 6
    assert s.connections == 2 and s.most_open == 2


async def test_waiting_for_a_connection_times_out_as_a_pool_timeout() -> None:
    async def stall(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        await asyncio.sleep(1)

    async with server(stall) as (_, url):
        transport = HttpTransport(1)
        first = asyncio.create_task(post(transport, url))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await post(transport, url, timeouts=Timeouts(connect=2, read=2, pool=0.1))
        first.cancel()
        await transport.aclose()


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    go_on = asyncio.Event()

    async def chunked(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n")  # fmt: skip
        await w.drain()
        await go_on.wait()
        w.write(b"4\r\none\n\r\n0\r\n\r\n")
        await w.drain()
        await s.read_request(reader)  # the connection is reused afterwards
        w.write(OK)

    async with server(chunked) as (s, url):
        transport = HttpTransport(1)
        response = await post(transport, url, buffered=False)
        pieces = response.aiter_bytes()
        assert await anext(pieces) == b"data: "  # before the server sent the rest
        go_on.set()
        assert [p async for p in pieces] == [b"one\n"]
        assert (await post(transport, url)).content == b"{}"
        await transport.aclose()
    assert s.connections == 1


async def test_close_delimited_body_is_read_to_eof_and_not_reused() -> None:
    async def http10(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")
        await w.drain()

    async with server(http10) as (s, url):
        transport = HttpTransport(1)
        assert (await post(transport, url)).content == b"all of it"
        assert (await post(transport, url)).content == b"all of it"
        await transport.aclose()
    assert s.connections == 2


async def test_connection_close_answer_is_not_reused() -> None:
    async def once(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        w.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}")
        await w.drain()
        await asyncio.sleep(0.2)  # the client must not wait for this close to reuse it

    async with server(once) as (s, url):
        transport = HttpTransport(1)
        await post(transport, url)
        await post(transport, url)
        await transport.aclose()
    assert s.connections == 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..", httpx.RemoteProtocolError),
        (b"", httpx.RemoteProtocolError),  # closed without a byte
        (b"SMTP ready\r\n\r\n", httpx.RemoteProtocolError),
        (b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\nxx",
         httpx.DecodingError),
    ],
)  # fmt: skip
async def test_broken_answers_raise_httpx_errors(answer: bytes, error: type[Exception]) -> None:
    async def broken(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        w.write(answer)
        await w.drain()

    async with server(broken) as (_, url):
        transport = HttpTransport(1)
        with pytest.raises(error):
            await post(transport, url)
        await transport.aclose()


async def test_gzip_body_is_decoded() -> None:
    payload = b'{"text": "' + b"x" * 5000 + b'"}'
    packed = gzip.compress(payload)

    async def zipped(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s"
                % (len(packed), packed))  # fmt: skip
        await w.drain()

    async with server(zipped) as (s, url):
        transport = HttpTransport(1)
        assert (await post(transport, url)).content == payload
        await transport.aclose()
    assert b"accept-encoding: gzip, deflate" in s.requests[0]


async def test_read_timeout_between_chunks() -> None:
    async def stall(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await s.read_request(reader)
        w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await w.drain()
        await asyncio.sleep(2)

    async with server(stall) as (_, url):
        transport = HttpTransport(1)
        response = await post(transport, url, buffered=False,
                              timeouts=Timeouts(connect=2, read=0.2, pool=2))  # fmt: skip
        pieces = response.aiter_bytes()
        assert await anext(pieces) == b"hi"
        with pytest.raises(httpx.ReadTimeout):
            await anext(pieces)
        await transport.aclose()


async def test_header_with_crlf_is_refused_before_anything_is_sent() -> None:
    async with server(keep_answering) as (s, url):
        transport = HttpTransport(1)
        with pytest.raises(httpx.LocalProtocolError):
            await post(transport, url, headers={"x-a": "1\r\nx-injected: yes"})
        await transport.aclose()
    assert s.requests == [] and s.connections == 0


async def test_cancelled_request_closes_its_connection_and_frees_the_slot() -> None:
    async def first_stalls(s: Server, reader: asyncio.StreamReader,
                           w: asyncio.StreamWriter) -> None:  # fmt: skip
        await s.read_request(reader)
        if len(s.requests) == 1:
            await reader.read()  # until the client hangs up
            return
        w.write(OK)
        await w.drain()

    async with server(first_stalls) as (s, url):
        transport = HttpTransport(1)
        task = asyncio.create_task(post(transport, url))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(s.closed.wait(), 2)  # the server saw the hang-up
        assert (await post(transport, url)).content == b"{}"
        await transport.aclose()
    assert s.connections == 2


async def test_abandoned_stream_is_not_reused_and_a_slow_reader_gets_every_byte() -> None:
    big = b"y" * (1024 * 1024)

    async def large(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(big), big))
            await w.drain()

    async with server(large) as (s, url):
        transport = HttpTransport(1)
        response = await post(transport, url, buffered=False)
        received = b""
        async for piece in response.aiter_bytes():
            received += piece
            await asyncio.sleep(0.001)  # slower than the socket: reading pauses, then resumes
        assert received == big
        abandoned = await post(transport, url, buffered=False)
        await anext(abandoned.aiter_bytes())
        await abandoned.aclose()
        assert (await post(transport, url)).content == big
        await transport.aclose()
    assert s.connections == 2  # the finished stream's connection was reused, the abandoned not


async def test_idle_connections_expire_after_keepalive() -> None:
    async with server(keep_answering) as (s, url):
        transport = HttpTransport(1, keepalive_s=0.1)
        await post(transport, url)
        await asyncio.sleep(0.2)
        await post(transport, url)
        await transport.aclose()
    assert s.connections == 2


def test_urls_are_parsed_into_origin_and_target() -> None:
    origin, target = parse_url("https://api.example.com/v1/chat/completions?api-version=1")
    assert (origin.scheme, origin.host, origin.port, origin.authority) == (
        "https", "api.example.com", 443, "api.example.com")  # fmt: skip
    assert target == "/v1/chat/completions?api-version=1"
    assert parse_url("http://[::1]:8080")[0].authority == "[::1]:8080"
    with pytest.raises(httpx.UnsupportedProtocol):
        parse_url("ftp://example.com/")


async def test_https_verifies_the_server_against_the_trust_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TLS with a CA the client trusts through SSL_CERT_FILE (as a deployment adds its
    own); the same server is refused while that CA is not trusted."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    tcp = await asyncio.start_server(Server(keep_answering_any).serve, "127.0.0.1", 0,
                                     ssl=server_context)  # fmt: skip
    url = f"https://localhost:{tcp.sockets[0].getsockname()[1]}/v1/chat"
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(HttpTransport(1), url)
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        transport = HttpTransport(1)
        assert (await post(transport, url)).content == b"{}"
        assert (await post(transport, url)).content == b"{}"  # kept alive over TLS
        await transport.aclose()
    finally:
        tcp.close()


async def keep_answering_any(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        w.write(OK)
        await w.drain()


async def test_interim_responses_are_skipped() -> None:
    async def hints(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            w.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + OK)
            await w.drain()

    async with server(hints) as (_, url):
        transport = HttpTransport(1)
        for buffered in (True, False):
            response = await post(transport, url, buffered=buffered)
            assert response.status_code == 200 and await response.aread() == b"{}"
            assert b"link" not in {k for k, _ in response.raw_headers}
        await transport.aclose()


async def test_released_stream_finishes_in_the_background_and_is_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream whose last event was read (`release`) keeps its connection once the
    terminator arrives; one whose rest is too large, or stalls, is closed."""
    monkeypatch.setattr(http1, "DRAIN_S", 0.2)
    hung_up: list[bool] = []
    rest = {1: b"0\r\n\r\n", 2: b"20000\r\n" + b"z" * 0x20000 + b"\r\n0\r\n\r\n", 3: None}

    async def tail(s: Server, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await s.read_request(reader)
            w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                    b"e\r\ndata: [DONE]\n\n\r\n")  # fmt: skip
            await w.drain()
            await asyncio.sleep(0.05)
            ending = rest[len(s.requests)]
            if ending is None:  # stalls: the client hangs up within DRAIN_S
                try:
                    hung_up.append(await asyncio.wait_for(reader.read(), 1) == b"")
                except ConnectionResetError:  # aborted
                    hung_up.append(True)
                return
            w.write(ending)
            await w.drain()

    async with server(tail) as (s, url):
        transport = HttpTransport(1)
        for _ in range(3):
            response = await post(transport, url, buffered=False)
            assert await anext(response.aiter_bytes()) == b"data: [DONE]\n\n"
            response.release()
            await asyncio.sleep(0.4)
        await transport.aclose()
    # 1: terminator -> reused by 2; 2: too much after release -> closed; 3: new, stalls
    assert s.connections == 2 and hung_up == [True]
