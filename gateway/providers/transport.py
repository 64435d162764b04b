"""aiohttp's connection pool behind httpx's client API, lean enough for a proxy's hot path.

`httpx-aiohttp` (by an httpx maintainer) showed the way; it is a general-purpose transport
for `httpx.AsyncClient` and costs ~0.2-0.4 ms per request here. A proxy needs less: no
cookie jar (one shared jar would leak `Set-Cookie` between tenants), no redirects, and the
body read as it arrives. `AiohttpTransport` is an httpx transport for clients that want
httpx's API, and gives the providers' hot path a leaner call (`send`) on the same pool;
both raise httpx's exceptions. The measurements are in the closing notes of issue 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
import yarl

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

DECODED = (b"content-encoding", b"content-length", b"transfer-encoding")


class UpstreamResponse:
    """What the gateway's hot path gets back: status, the headers a proxy reads or relays
    (lower-cased), and the body, read whole or streamed. An `httpx.Response` costs ~25 us
    more a request (its headers model and its decoder pipeline run even on a body that
    was already read), about a tenth of the gateway's own time per request."""

    __slots__ = ("_response", "content", "headers", "status_code")

    def __init__(self, response: aiohttp.ClientResponse, content: bytes = b"") -> None:
        self.status_code = response.status
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in response.raw_headers
            if k.lower().startswith(KEPT)
        }
        self.content = content
        self._response = response

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._response.raw_headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives; transport failures raise httpx's read errors."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def aread(self) -> bytes:
        if not self.content:
            self.content = b"".join([chunk async for chunk in self.aiter_bytes()])
        return self.content

    async def aclose(self) -> None:
        self._response.close()  # not release(): an unfinished body must not go back to the pool


class AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_bytes():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp connection pool, created on first use inside the running loop.

    `handle_async_request` makes it an httpx transport: `httpx.AsyncClient(transport=...)`
    is the client API (the webhook guardrail uses it). The providers' hot path calls `send`
    with the URL already parsed and the timeout already built, and gets an
    `UpstreamResponse`: no `httpx.Request` (~13 us) nor `httpx.Response` (~25 us) a call."""

    def __init__(self, max_connections: int, keepalive_s: float = 30.0) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=self._keepalive_s, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.send(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                await request.aread(),
                request.headers.multi_items(),
                client_timeout(request.extensions.get("timeout", {})),
                buffered=False,  # httpx reads the stream itself (or not, for `stream()`)
            )
        except httpx.TransportError as exc:
            exc.request = request
            raise
        # all of them (a general-purpose client) but those aiohttp already acted on: the
        # body arrives decompressed and de-chunked
        headers = [(k, v) for k, v in response.raw_headers if k.lower() not in DECODED]
        stream = AiohttpStream(response)
        return httpx.Response(response.status_code, headers=headers, stream=stream, request=request)

    async def send(
        self,
        method: str,
        url: yarl.URL,
        body: bytes,
        headers: Mapping[str, str] | list[tuple[str, str]],
        timeouts: aiohttp.ClientTimeout,
        *,
        buffered: bool,
    ) -> UpstreamResponse:
        """Send and return the response: streaming (headers read, body not yet) or, with
        `buffered`, read whole. Transport failures raise httpx's exceptions."""
        session = self._session or self._open()
        try:
            response = await session.request(
                method, url, data=body, headers=headers, allow_redirects=False, timeout=timeouts
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
        except TimeoutError as exc:  # connected; the answer's headers did not come in time
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
        except aiohttp.ClientError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        if not buffered:
            return UpstreamResponse(response)
        try:
            return UpstreamResponse(response, await response.read())
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        finally:
            response.release()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let aiohttp finish closing its transports


def client_timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's timeout dict (connect, read, write, pool) as aiohttp's."""
    return aiohttp.ClientTimeout(
        sock_connect=timeout.get("connect"),
        sock_read=timeout.get("read"),
        connect=timeout.get("pool"),
    )
