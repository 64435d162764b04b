"""What every provider speaks: the request it receives, what it returns, and the
pooled upstream HTTP client they share the code (not the connections) of."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from gateway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnreachable,
    openai_error_from_upstream,
)
from gateway.policy.models import HttpProviderConfig
from gateway.providers.http1 import Origin, ResponseTooLarge, Timeouts
from gateway.providers.sse import EventTooLarge, SSEEvent, SSEParser
from gateway.providers.transport import HttpTransport, UpstreamResponse, parse_url

Operation = Literal["chat", "completions", "embeddings"]
RELAYED_HEADERS = ("openai-processing-ms", "retry-after", "x-ratelimit-")
USER_AGENT = {"user-agent": "llm-gateway"}


@dataclass(slots=True)
class UpstreamRequest:
    """A request ready for one provider: `body` already names the upstream model."""

    operation: Operation
    body: dict[str, Any]
    stream: bool
    headers: dict[str, str] = field(default_factory=dict)
    connect_s: float | None = None  # the model's `timeouts.connect_s` (default: the provider's)


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) OpenAI-format response body and the headers to relay."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    doc: dict[str, Any] | None = None  # `body` parsed, when a check already parsed it


class ChunkStream(Protocol):
    """An upstream stream already past its 2xx status: OpenAI chunk payloads (JSON
    bytes, no `data:` framing, no `[DONE]`). `aclose` cancels the upstream request."""

    headers: dict[str, str]

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    name: str
    address: tuple[str, int | None]  # the upstream's host and port, for telemetry
    system: str  # its `gen_ai.provider.name`

    def supports(self, operation: Operation) -> bool: ...

    async def complete(self, request: UpstreamRequest) -> Completion: ...

    async def stream(self, request: UpstreamRequest) -> ChunkStream: ...

    async def aclose(self) -> None: ...


class UnsupportedOperation(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "unsupported_operation"


def relayed_headers(response: UpstreamResponse) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith(RELAYED_HEADERS)}


class UpstreamHTTP:
    """One pooled HTTP client per provider (`http1` connections, httpx's exceptions)."""

    def __init__(self, config: HttpProviderConfig) -> None:
        self.transport = HttpTransport(
            config.max_connections, max_body_bytes=config.max_response_bytes,
            proxy_url=config.proxy_url, proxy_from_env=config.proxy_from_env,
        )  # fmt: skip
        self.max_event_bytes = config.max_response_bytes
        connect = config.connect_timeout_s
        self.timeout = Timeouts(connect=connect, read=config.timeout_s, pool=connect)
        self._urls: dict[str, tuple[Origin, str]] = {}
        self.secrets = provider_secrets(config)

    def mask(self, data: bytes) -> bytes:
        """This provider's secrets out of whatever it sent back (a 401 that echoes the key,
        a debugging proxy that reflects headers): never relayed, logged or recorded."""
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return data

    def _parsed(self, url: str) -> tuple[Origin, str]:
        """Parse each upstream URL once (httpx's and yarl's parsers cost ~20 us)."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = parse_url(url)
        return parsed

    async def send(
        self, url: str, body: bytes, headers: dict[str, str], *, stream: bool,
        connect_s: float | None = None,
    ) -> UpstreamResponse:  # fmt: skip
        """POST and return a 2xx response (streaming: headers read, body not yet).

        Raises UpstreamError for 4xx/5xx (body normalised to OpenAI's error shape by
        `error_body`), UpstreamTimeout and UpstreamUnreachable for transport failures.
        """
        try:
            timeout = (
                self.timeout
                if connect_s is None
                else Timeouts(connect=connect_s, read=self.timeout.read, pool=connect_s)
            )
            response = await self.transport.send(
                "POST", self._parsed(url), body, headers, timeout, buffered=not stream
            )
            if response.status_code >= 300 and stream:
                await response.aread()
                await response.aclose()
            if 300 <= response.status_code < 400:  # no redirect is followed: not an answer
                raise UpstreamInvalidResponse(
                    f"the upstream answered HTTP {response.status_code} (redirects are not "
                    "followed)"
                )
            if response.status_code >= 400:
                raw = self.mask(response.content)
                error, message = self.error_body(response.status_code, raw)
                raise UpstreamError(response.status_code, error, message, relayed_headers(response))
            return response
        except httpx.HTTPError as exc:
            raise upstream_failure(exc, url) from None

    def error_body(self, status: int, raw: bytes) -> tuple[bytes, str]:
        return openai_error_from_upstream(status, raw)

    async def aclose(self) -> None:
        await self.transport.aclose()


MASK = b"***"
AUTH_HEADERS = ("authorization", "api-key", "x-api-key", "proxy-authorization")


def provider_secrets(config: HttpProviderConfig) -> tuple[bytes, ...]:
    """The key and the values of auth-like headers (with and without a `Bearer ` scheme),
    longest first, so that a longer secret is masked whole before a part of it."""
    values = [v for k, v in config.headers.items() if k.lower() in AUTH_HEADERS]
    if config.api_key is not None:
        values.append(config.api_key.get_secret_value())
    values += [v.split(" ", 1)[1] for v in values if " " in v]
    if config.proxy_url is not None:  # the proxy's password, if its URL carries one
        values += [p for p in (urlsplit(config.proxy_url).password,) if p]
    found = {v.encode() for v in values if len(v) >= 4}
    return tuple(sorted(found, key=len, reverse=True))


def upstream_address(base_url: str) -> tuple[str, int | None]:
    url = httpx.URL(base_url)
    return url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def upstream_failure(exc: httpx.HTTPError, url: str) -> GatewayError:
    """Map a transport exception to 504 (timeout) or 502 (anything else)."""
    host = httpx.URL(url).host
    if isinstance(exc, ResponseTooLarge | httpx.DecodingError):
        return UpstreamInvalidResponse(f"upstream {host}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"upstream {host} timed out")
    return UpstreamUnreachable(f"upstream {host} is unreachable or closed the connection")


async def iter_sse(
    response: UpstreamResponse, url: str, max_event_bytes: int
) -> AsyncIterator[SSEEvent]:
    """Events of a streaming response as they arrive; transport errors become GatewayErrors,
    and so does an event that grows past `max_event_bytes` without ending."""
    parser = SSEParser(max_event_bytes)
    try:
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                yield event
    except httpx.HTTPError as exc:
        raise upstream_failure(exc, url) from None
    except EventTooLarge:
        raise UpstreamInvalidResponse(
            f"a stream event from the upstream is over {max_event_bytes} bytes"
        ) from None
    for event in parser.close():
        yield event


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
