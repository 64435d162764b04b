"""The gateway's upstream HTTP transport: pools of `http1` connections per origin, with
two faces. `send` is the providers' hot path: the URL parsed once, the timeouts built
once, an `UpstreamResponse` back (no `httpx.Request`, ~13 us, nor `httpx.Response`, ~25
us, a call). `handle_async_request` makes the same pools an httpx transport, for code
that wants httpx's client API (the webhook guardrail). Both raise httpx's exceptions.

No cookie jar (one shared jar would leak `Set-Cookie` between tenants), no redirects, no
proxy variables: a gateway talks to the upstreams its policy names.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable, Mapping

import certifi
import httpx
import yarl

from gateway.providers.http1 import MAX_BODY_BYTES, ConnectionPool, Exchange, Origin, Timeouts
from gateway.providers.proxy import proxy_for

# Only what a proxy reads or relays is kept in `UpstreamResponse.headers` (real upstreams
# send 20+): type, rate limits, timing, retry hints.
KEPT = (
    b"content-type",
    b"retry-after",
    b"x-ratelimit-",
    b"openai-",
    b"anthropic-",
    b"x-request-id",
)
# what the transport already acted on: bodies arrive de-chunked and decompressed
DECODED = (b"content-encoding", b"content-length", b"transfer-encoding")
# request headers the transport writes itself
OWN = frozenset(("host", "content-length", "transfer-encoding", "accept-encoding", "connection"))
DEFAULT_PORTS = {"http": 80, "https": 443}


class UpstreamResponse:
    """What the gateway's hot path gets back: status, the headers a proxy reads or relays
    (lower-cased), and the body, read whole or streamed."""

    __slots__ = ("_exchange", "content", "headers", "status_code")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self.status_code = exchange.status
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in exchange.raw_headers
            if k.lower().startswith(KEPT)
        }
        self.content = b"".join(exchange.take()) if exchange.buffered else b""

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._exchange.raw_headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives; transport failures raise httpx's read errors."""
        exchange = self._exchange
        while True:
            if exchange.chunks:
                for piece in exchange.take():
                    if piece:
                        yield piece
                continue
            if exchange.done:
                if exchange.error is not None:
                    raise exchange.error
                return
            await exchange.wait()

    async def aread(self) -> bytes:
        if not self.content:
            self.content = b"".join([chunk async for chunk in self.aiter_bytes()])
        return self.content

    async def aclose(self) -> None:
        """An unfinished body closes its connection (a client that went away: the upstream
        stops generating); a finished one was already reused."""
        if self._exchange.conn is not None:
            self._exchange.conn.abandon(self._exchange)

    def release(self) -> None:
        """What the body means has been read (a stream's final event), its last bytes may
        still be on the way: they finish in the background and the connection is reused."""
        if self._exchange.conn is not None:
            self._exchange.conn.drain(self._exchange)


class ExchangeStream(httpx.AsyncByteStream):
    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_bytes():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


def parse_url(url: str) -> tuple[Origin, str]:
    """An absolute http(s) URL as its origin and request target (path and query)."""
    parsed = yarl.URL(str(httpx.URL(url)), encoded=True)
    if parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host:
        raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url!r}")
    port = parsed.explicit_port or DEFAULT_PORTS[parsed.scheme]
    return Origin(parsed.scheme, parsed.raw_host, port), parsed.raw_path_qs or "/"


class HttpTransport(httpx.AsyncBaseTransport):
    """A connection pool per origin (`max_connections` each), created on first use
    inside the running loop."""

    def __init__(
        self, max_connections: int, keepalive_s: float = 30.0,
        max_body_bytes: int = MAX_BODY_BYTES, proxy_url: str | None = None,
        proxy_from_env: bool = False,
    ) -> None:  # fmt: skip
        self._proxy = (proxy_url, proxy_from_env)
        self._max_connections = max_connections
        self._max_body_bytes = max_body_bytes
        self._keepalive_s = keepalive_s
        self._pools: dict[Origin, ConnectionPool] = {}
        self._ssl: ssl.SSLContext | None = None

    def _pool(self, origin: Origin) -> ConnectionPool:
        pool = self._pools.get(origin)
        if pool is None:
            context = None
            if origin.scheme == "https":
                context = self._ssl = self._ssl or tls_context()
            proxy = proxy_for(origin.scheme, origin.host, *self._proxy)
            pool = ConnectionPool(origin, self._max_connections, self._keepalive_s, context,
                                  self._max_body_bytes, proxy)  # fmt: skip
            self._pools[origin] = pool
        return pool

    async def send(
        self,
        method: str,
        url: tuple[Origin, str],
        body: bytes,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        timeouts: Timeouts,
        *,
        buffered: bool,
    ) -> UpstreamResponse:
        """Send and return the response: streaming (headers read, body not yet) or, with
        `buffered`, read whole. Transport failures raise httpx's exceptions."""
        origin, target = url
        items = headers.items() if isinstance(headers, Mapping) else headers
        exchange = await self._pool(origin).request(
            method, target, items, body, timeouts, buffered=buffered
        )
        return UpstreamResponse(exchange)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin, target = parse_url(str(request.url))
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in OWN]
        try:
            response = await self.send(
                request.method, (origin, target), await request.aread(), headers,
                timeouts(request.extensions.get("timeout", {})), buffered=False,
            )  # fmt: skip
        except httpx.RequestError as exc:
            exc.request = request
            raise
        headers_out = [(k, v) for k, v in response.raw_headers if k.lower() not in DECODED]
        stream = ExchangeStream(response)
        return httpx.Response(
            response.status_code, headers=headers_out, stream=stream, request=request
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


def timeouts(timeout: Mapping[str, float | None]) -> Timeouts:
    """httpx's timeout dict (connect, read, write, pool) as the pool's."""
    return Timeouts(timeout.get("connect"), timeout.get("read"), timeout.get("pool"))


def tls_context() -> ssl.SSLContext:
    """The system's trust store (and SSL_CERT_FILE / SSL_CERT_DIR), plus certifi's roots
    as httpx has them, so a slim container image without CA certificates still verifies."""
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context
