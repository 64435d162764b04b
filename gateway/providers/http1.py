"""The upstream HTTP/1.1 client: keep-alive connections as asyncio protocols, responses
parsed by httptools (llhttp, the parser uvicorn serves with), one pool per origin.

Why not aiohttp's `ClientSession`: measured in one process against the same mock at 20
concurrent requests, its request path costs ~60 us of CPU a request here (timer contexts,
trace hooks, `ClientRequest`/`ClientResponse`, payload writers, a `StreamReader`); this
client ~16-20 us. The gateway serves on one core, so that difference is a fifth of its
throughput (README, "Performance"). What it does: HTTP and HTTPS (the system's trust
store), `content-length`, chunked and close-delimited bodies, gzip/deflate, a per-read
timeout, a bounded pool whose waiters time out, idle connections dropped after their
keep-alive, flow control for streams a consumer reads slowly, and a response abandoned
mid-body closes its connection instead of returning it to the pool. Failures raise
httpx's exceptions (the providers map those to 502/504 in one place).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import httptools
import httpx

from gateway.providers.proxy import Proxy, open_connection

HIGH_WATER = 256 * 1024  # buffered bytes of a stream at which reading pauses
# a response whose meaning is complete (a stream's last event read) but whose message is
# not (the chunked terminator still on its way) finishes in the background and its
# connection is reused, unless the rest is larger than this or stalls for DRAIN_S
DRAIN_BYTES = 64 * 1024
DRAIN_S = 1.0


MAX_BODY_BYTES = 64 * 1024 * 1024  # a whole response, after decompression (gzip bombs too)


class ResponseTooLarge(httpx.ReadError):
    """A whole response over the pool's `max_body_bytes`: the connection is dropped."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float | None  # TCP (and TLS) connect
    read: float | None  # to the headers, then between reads
    pool: float | None  # waiting for a free connection


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


class Exchange:
    """One response as it arrives: status, raw headers, body pieces not yet taken."""

    __slots__ = ("buffered", "chunks", "conn", "decoder", "discard", "done", "error",
                 "headers_done", "raw_headers", "size", "status", "until_eof",
                 "waiter")  # fmt: skip

    def __init__(self, conn: Connection, buffered: bool) -> None:
        self.conn: Connection | None = conn
        self.buffered = buffered
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.headers_done = self.done = self.until_eof = self.discard = False
        self.error: httpx.RequestError | None = None
        self.decoder: zlib._Decompress | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    def take(self) -> list[bytes]:
        """The body pieces that arrived since the last call (resuming a paused read)."""
        pieces = list(self.chunks)
        self.chunks.clear()
        self.size = 0
        if self.conn is not None and self.conn.paused:
            self.conn.resume()
        return pieces


class Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` is the response it is receiving, if any."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.closed = self.paused = False
        self.idle_since = self.last_read = 0.0
        self.read_timeout: float | None = None
        self.timer: asyncio.TimerHandle | None = None

    # -- the request side
    def send(self, data: bytes, buffered: bool, read_timeout: float | None) -> Exchange:
        assert self.transport is not None
        exchange = self.exchange = Exchange(self, buffered)
        self.read_timeout, self.last_read = read_timeout, self.loop.time()
        if read_timeout is not None:
            self.timer = self.loop.call_at(self.last_read + read_timeout, self._check_timeout)
        self.transport.write(data)
        return exchange

    def abandon(self, exchange: Exchange) -> None:
        """`exchange` will not be read to its end: if it is still arriving, close the
        connection (never reuse it); one already complete changes nothing."""
        if exchange.conn is self:
            self._fail(httpx.ReadError("response abandoned"))

    def drain(self, exchange: Exchange) -> None:
        """Nobody reads the rest of `exchange`: if it is still arriving, let it finish in
        the background (dropping what arrives) so the connection can be reused."""
        if exchange.conn is not self:
            return
        exchange.discard = True
        exchange.chunks.clear()
        exchange.size = 0
        self.resume()
        if self.read_timeout is None or self.read_timeout > DRAIN_S:
            self.read_timeout = DRAIN_S
            self.last_read = self.loop.time()
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(self.last_read + DRAIN_S, self._check_timeout)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.exchange
        if exchange is None:
            return
        if exchange.headers_done and exchange.until_eof:  # a close-delimited body ends here
            self.on_message_complete()
        elif exchange.status or exchange.raw_headers:
            self._finish(httpx.RemoteProtocolError("upstream closed the connection mid-response"))
        else:  # not retried: the upstream may have acted on it (an LLM call costs money)
            self._finish(httpx.RemoteProtocolError("upstream closed the connection unanswered"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.exchange is not None
        self.exchange.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.status = self.parser.get_status_code()
        if 100 <= exchange.status < 200:  # interim (103 Early Hints): the answer follows
            return
        framing = encoding = b""
        for name, value in exchange.raw_headers:
            lower = name.lower()
            if lower in (b"content-length", b"transfer-encoding"):
                framing = lower
            elif lower == b"content-encoding":
                encoding = value.strip().lower()
        exchange.until_eof = not framing and exchange.status not in (204, 304)
        if encoding in (b"gzip", b"x-gzip", b"deflate"):
            exchange.decoder = zlib.decompressobj(31 if encoding != b"deflate" else 15)
        elif encoding not in (b"", b"identity"):
            self._fail(httpx.DecodingError(f"unsupported content-encoding {encoding.decode()!r}"))
            return
        exchange.headers_done = True
        if not exchange.buffered:
            exchange.wake()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        if exchange.decoder is not None:
            try:
                body = exchange.decoder.decompress(body)
            except zlib.error as exc:
                self._fail(httpx.DecodingError(f"could not decompress the response: {exc}"))
                return
        exchange.size += len(body)
        if exchange.buffered and exchange.size > self.pool.max_body_bytes:
            self._fail(ResponseTooLarge(f"the response is over {self.pool.max_body_bytes} bytes"))
            return
        if exchange.discard:
            if exchange.size > DRAIN_BYTES:
                self._fail(httpx.ReadError("response abandoned"))
            return
        exchange.chunks.append(body)
        if exchange.buffered:
            return
        if exchange.size > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        if not exchange.headers_done:  # an interim response ended: wait for the real one
            exchange.status, exchange.raw_headers = 0, []
            return
        if exchange.decoder is not None:
            exchange.chunks.append(exchange.decoder.flush())
        self._finish(None, reuse=self.parser.should_keep_alive() and not exchange.until_eof)

    # -- endings
    def _check_timeout(self) -> None:
        self.timer = None
        if self.exchange is None or self.read_timeout is None:
            return
        now = self.loop.time()
        if self.paused:  # the consumer is behind, not the upstream
            self.last_read = now
        if now - self.last_read >= self.read_timeout:
            self._fail(httpx.ReadTimeout("upstream read timed out"))
        else:
            self.timer = self.loop.call_at(self.last_read + self.read_timeout, self._check_timeout)

    def _fail(self, error: httpx.RequestError) -> None:
        self._finish(error, reuse=False)
        self.close()

    def _finish(self, error: httpx.RequestError | None, reuse: bool = False) -> None:
        exchange, self.exchange = self.exchange, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if exchange is not None:
            exchange.error, exchange.done, exchange.conn = error, True, None
            exchange.wake()
        self.pool.release(self, reuse and error is None and not self.closed)


class ConnectionPool:
    """Keep-alive connections to one origin, at most `max_connections` at a time; the
    most recently used idle one is reused first."""

    def __init__(self, origin: Origin, max_connections: int, keepalive_s: float,
                 ssl_context: ssl.SSLContext | None, max_body_bytes: int = MAX_BODY_BYTES,
                 proxy: Proxy | None = None) -> None:  # fmt: skip
        self.origin = origin
        self.proxy = proxy  # https: a CONNECT tunnel each connection; http: absolute form
        self.max_body_bytes = max_body_bytes  # a whole (buffered) body, decompressed
        self.loop = asyncio.get_running_loop()
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self.ssl = ssl_context
        self.active = 0  # connections out for a request, or connecting
        self.idle: list[Connection] = []
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.host_lines = f"host: {origin.authority}\r\naccept-encoding: gzip, deflate\r\n"
        self.forward = proxy is not None and origin.scheme == "http"
        if self.forward and proxy is not None and proxy.authorization:
            self.host_lines += f"proxy-authorization: {proxy.authorization}\r\n"

    async def request(self, method: str, target: str, headers: Iterable[tuple[str, str]],
                      body: bytes,
                      timeouts: Timeouts, *, buffered: bool) -> Exchange:  # fmt: skip
        """Send one request; return its exchange with the headers in (streaming) or the
        whole body (`buffered`). A cancelled wait closes the connection."""
        if self.forward:  # through the proxy: the request line names the whole URL
            target = f"http://{self.origin.authority}{target}"
        data = request_bytes(method, target, self.host_lines, headers, body)
        conn = await self.acquire(timeouts)
        exchange = conn.send(data, buffered, timeouts.read)
        try:
            while not (exchange.done or (exchange.headers_done and not buffered)):
                await exchange.wait()
        except BaseException:
            conn.abandon(exchange)
            raise
        if exchange.error is not None:
            raise exchange.error
        return exchange

    async def acquire(self, timeouts: Timeouts) -> Connection:
        while True:
            now = self.loop.time()
            while self.idle:
                conn = self.idle.pop()
                if conn.usable and now - conn.idle_since < self.keepalive_s:
                    self.active += 1
                    return conn
                conn.close()
            if self.active < self.max_connections:
                self.active += 1
                try:
                    return await self.connect(timeouts.connect)
                except BaseException:
                    self.active -= 1
                    self.wake_one()
                    raise
            await self.wait_for_slot(timeouts.pool)

    async def wait_for_slot(self, within_s: float | None) -> None:
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(within_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.wake_one()  # woken just as it gave up: the free slot goes to the next
            waiter.cancel()  # `wake_one` skips it
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("no free upstream connection in time") from None
            raise

    async def connect(self, within_s: float | None) -> Connection:
        origin = self.origin
        return await open_connection(lambda: Connection(self), origin.host, origin.port,
                                     self.ssl, self.proxy, self.forward, within_s)  # fmt: skip

    def release(self, conn: Connection, reuse: bool) -> None:
        self.active -= 1
        if reuse:
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
        elif conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()
        self.wake_one()

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


def request_bytes(method: str, target: str, fixed: str, headers: Iterable[tuple[str, str]],
                  body: bytes) -> bytes:  # fmt: skip
    """The request head and body, one write. A CR or LF inside a header (which would
    smuggle a header or a request) is refused."""
    lines = [f"{name}: {value}\r\n" for name, value in headers]
    text = "".join(lines)
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise httpx.LocalProtocolError("a header name or value contains CR or LF")
    head = f"{method} {target} HTTP/1.1\r\n{fixed}{text}content-length: {len(body)}\r\n\r\n"
    try:
        return head.encode("latin-1") + body
    except UnicodeEncodeError:
        raise httpx.LocalProtocolError("a header is not Latin-1 text") from None
