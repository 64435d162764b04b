"""The HTTP/1.1 server protocol: uvicorn's httptools protocol with what a gateway facing
clients it does not control needs (`server:` in the policy, read per connection):

- `header_timeout_s`: a connection that has not sent a whole request head that long after
  it opened (or after the first byte of its next request) gets a 408 and is closed, so
  clients that trickle their headers cannot hold file descriptors.
- `body_timeout_s`: a body not whole that long after its head: the request is answered
  408 (`request_timeout`) and logged as such.
- a client that goes away while its request waits on an upstream call or a local
  generation: the request is cancelled (`cancel_abandoned`).
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

from gateway.errors import RequestTimeout
from gateway.policy.models import ServerConfig

log = logging.getLogger("gateway.server")
DEFAULTS = ServerConfig()
TIMEOUT_BODY = RequestTimeout("The request head took too long to send.").to_body()
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(TIMEOUT_BODY), TIMEOUT_BODY))  # fmt: skip


class GatewayHttpProtocol(HttpToolsProtocol):
    """Per request the deadlines cost a few attribute writes: one timer per connection
    checks them (re-armed at the nearer of the two timeouts), so a head or body that
    trickles is cut between one and two timeouts after it began."""

    _head_started: float | None = None
    _body_started: float | None = None
    _check: asyncio.TimerHandle | None = None
    _running: RequestResponseCycle | None = None  # the request whose app task runs

    def settings(self) -> ServerConfig:
        state: Any = (self.app_state or {}).get("gateway")
        return state.runtime.policy.server if state is not None else DEFAULTS

    def count(self, what: str) -> None:
        state: Any = (self.app_state or {}).get("gateway")
        if state is not None:
            state.connection_fault(what)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        settings = self.settings()
        if len(self.connections) > settings.max_connections:
            self.count("refused")
            transport.abort()
            return
        self._head_started = self.loop.time()  # a connection that sends nothing is cut too
        self._check = self.loop.call_later(settings.header_timeout_s, self._check_deadlines)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_started = None
        self._body_started = self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_started = None
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._check is not None:
            self._check.cancel()
        running = self._running
        if running is not None and not running.response_complete:
            # uvicorn marks only the last request it parsed (`self.cycle`); with pipelined
            # requests that is not the one running, which would then write to a closed
            # transport (a RuntimeError and a traceback for a client that simply left)
            running.disconnected = True
            running.message_event.set()
        cancel_abandoned(running)
        for cycle, _ in self.pipeline:  # pipelined requests not started: nobody to answer
            cycle.disconnected = True
        super().connection_lost(exc)

    def _check_deadlines(self) -> None:
        settings = self.settings()
        now = self.loop.time()
        head, body = self._head_started, self._body_started
        if head is not None and now - head >= settings.header_timeout_s:
            self.count("header_timeout")
            if not self.transport.is_closing():
                self.transport.write(TIMEOUT_RESPONSE)
                self.transport.close()
            return
        if body is not None and now - body >= settings.body_timeout_s:
            self.count("body_timeout")
            self._body_started = None
            cancel_slow_body(self.cycle)  # the request whose body is arriving
        delay = min(settings.header_timeout_s, settings.body_timeout_s)
        self._check = self.loop.call_later(delay, self._check_deadlines)

    def shutdown(self) -> None:
        """uvicorn begins a graceful shutdown by calling this on every connection."""
        state: Any = (self.app_state or {}).get("gateway")
        if state is not None:
            state.begin_drain()
        super().shutdown()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        if cycle.scope.get("http_version") == "1.0":
            close_delimited(cycle)
        super()._start_asgi_task(cycle, app)


def cancel_abandoned(cycle: RequestResponseCycle | None) -> None:
    """The client is gone: a request waiting on its upstream call or local generation
    (its context says so) is cancelled, and the pipeline answers it as a disconnect."""
    if cycle is None or cycle.response_complete:
        return
    ctx = cycle.scope.get("state", {}).get("ctx")
    if ctx is not None and ctx.task is not None and ctx.cancel_on_disconnect:
        ctx.client_left = True
        ctx.task.cancel()


def cancel_slow_body(cycle: RequestResponseCycle | None) -> None:
    """The body's deadline passed: the request reading it is cancelled, and reading the
    body answers 408 (`gateway.requests.read_body`)."""
    if cycle is None or cycle.response_complete:
        return
    ctx = cycle.scope.get("state", {}).get("ctx")
    if ctx is not None and ctx.task is not None:
        ctx.body_timed_out = True
        ctx.task.cancel()


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
