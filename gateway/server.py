"""The HTTP/1.1 server protocol: uvicorn's httptools protocol with what a gateway facing
clients it does not control needs (`server:` in the policy, read per connection):

- `header_timeout_s`: a connection that has not sent a whole request head that long after
  it opened (or after the first byte of its next request) gets a 408 and is closed, so
  clients that trickle their headers cannot hold file descriptors. (The body has its own
  deadline, `body_timeout_s`, enforced where the body is read.)
- `max_connections`: connections past it are closed as they arrive (counted).
- HTTP/1.0 clients have no chunked transfer coding: a response without a length (a
  stream) goes to them close-delimited, as HTTP/1.0 frames it.

uvicorn serves it as `--http gateway.server:GatewayHttpProtocol` (an import string, so
`--workers N` processes load it too).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gateway.policy.models import ServerConfig

log = logging.getLogger("gateway.server")
DEFAULTS = ServerConfig()
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: 107\r\n\r\n"
                    b'{"error":{"message":"The request took too long to send.","type":'
                    b'"invalid_request_error","param":null,"code":null}}')  # fmt: skip


class GatewayHttpProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None

    def settings(self) -> ServerConfig:
        state: Any = (self.app_state or {}).get("gateway")
        return state.runtime.policy.server if state is not None else DEFAULTS

    def count(self, what: str) -> None:
        state: Any = (self.app_state or {}).get("gateway")
        if state is not None:
            state.connection_faults[what] += 1

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        settings = self.settings()
        if len(self.connections) > settings.max_connections:
            self.count("refused")
            transport.abort()
            return
        self._arm(settings.header_timeout_s)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm(self.settings().header_timeout_s)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, timeout_s: float) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        self.count("header_timeout")
        if not self.transport.is_closing():
            self.transport.write(TIMEOUT_RESPONSE)
            self.transport.close()

    def shutdown(self) -> None:
        """uvicorn begins a graceful shutdown by calling this on every connection."""
        state: Any = (self.app_state or {}).get("gateway")
        if state is not None:
            state.begin_drain()
        super().shutdown()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if cycle.scope.get("http_version") == "1.0":
            close_delimited(cycle)
        super()._start_asgi_task(cycle, app)


def close_delimited(cycle: RequestResponseCycle) -> None:
    """A response without content-length goes out as HTTP/1.0 frames it: no chunked
    coding, the body ends when the connection closes (an HTTP/1.0 cycle never keeps it)."""
    send = cycle.send
    delimited = False

    async def send_close_delimited(message: Any) -> None:
        nonlocal delimited
        if message["type"] == "http.response.start":
            names = {name.lower() for name, _ in message.get("headers", ())}
            if b"content-length" not in names:
                delimited = True
                cycle.chunked_encoding = False  # uvicorn would add transfer-encoding
                cycle.keep_alive = False
        elif message["type"] == "http.response.body" and delimited:
            # an unknown length: let uvicorn's length bookkeeping see each part as the rest
            cycle.expected_content_length = len(message.get("body", b""))
        await send(message)

    cycle.send = send_close_delimited  # type: ignore[method-assign]
