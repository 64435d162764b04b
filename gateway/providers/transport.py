"""httpx's request/response API over aiohttp's connection pool, lean enough for a proxy's
hot path.

`httpx-aiohttp` (by an httpx maintainer) showed the way; it is a general-purpose transport
for `httpx.AsyncClient` and costs ~0.2-0.4 ms per request here. A proxy needs less: no
cookie jar (one shared jar would leak `Set-Cookie` between tenants), no redirects, and the
body read as it arrives. So providers call this transport directly with `httpx.Request`s
and get `httpx.Response`s back; the measurements are in the closing notes of issue 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
import yarl

AIOHTTP_URL = "aiohttp_url"  # request extension: the URL already parsed by yarl
BUFFERED = "buffered"  # request extension: read the whole body before returning
# Only what a proxy reads or relays becomes an httpx header (building httpx.Headers costs
# ~1 us a header, and real upstreams send 20+): type, rate limits, timing, retry hints.
KEPT = (
    b"content-type",
    b"retry-after",
    b"x-ratelimit-",
    b"openai-",
    b"anthropic-",
    b"x-request-id",
)


class AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._response.close()  # not release(): an unfinished body must not go back to the pool


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp connection pool, created on first use inside the running loop.

    `handle_async_request` makes it an httpx transport (`httpx.AsyncClient(transport=...)`
    works); the gateway's own hot path calls `send` with the URL already parsed and the
    timeout already built, which skips building an `httpx.Request` (~13 us a call)."""

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
        return await self.send(
            request.method,
            request.extensions.get(AIOHTTP_URL) or yarl.URL(str(request.url), encoded=True),
            request.content,
            request.headers.multi_items(),
            client_timeout(request.extensions.get("timeout", {})),
            buffered=request.extensions.get(BUFFERED, False),
            request=request,
        )

    async def send(
        self,
        method: str,
        url: yarl.URL,
        body: bytes,
        headers: Mapping[str, str] | list[tuple[str, str]],
        timeouts: aiohttp.ClientTimeout,
        *,
        buffered: bool,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """Send and return the response: streaming (headers read, body not yet) or, with
        `buffered`, read whole. Transport failures raise httpx's exceptions."""
        session = self._session or self._open()
        try:
            response = await session.request(
                method, url, data=body, headers=headers, allow_redirects=False, timeout=timeouts
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except TimeoutError as exc:  # connected; the answer's headers did not come in time
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        kept = [(k, v) for k, v in response.raw_headers if k.lower().startswith(KEPT)]
        if not buffered:
            stream = AiohttpStream(response)
            return httpx.Response(response.status, headers=kept, stream=stream, request=request)
        try:
            content = await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        finally:
            response.release()
        return httpx.Response(response.status, headers=kept, content=content, request=request)

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
