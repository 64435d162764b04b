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
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx

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
    """One aiohttp connection pool, created on first use inside the running loop."""

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
        session = self._session or self._open()
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        try:
            response = await session.request(
                request.method,
                request.extensions.get(AIOHTTP_URL) or str(request.url),
                data=request.content,
                headers=request.headers.multi_items(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        headers = [(k, v) for k, v in response.raw_headers if k.lower().startswith(KEPT)]
        if request.extensions.get(BUFFERED):
            try:
                body = await response.read()
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
            except aiohttp.ClientError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
            finally:
                response.release()
            return httpx.Response(response.status, headers=headers, content=body, request=request)
        return httpx.Response(
            response.status, headers=headers, stream=AiohttpStream(response), request=request
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let aiohttp finish closing its transports
