"""Where finished requests go: the `TelemetrySink` extension point.

`record` is called once per request after its response has been delivered (streams
included) and must never raise or block; `aclose` flushes on shutdown.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from typing import Any, Protocol, TextIO, TypeVar

import orjson

from gateway.context import RequestContext

T = TypeVar("T")


class TelemetrySink(Protocol):
    def record(self, ctx: RequestContext) -> None: ...

    async def aclose(self) -> None: ...


class AccessLogSink:
    """One structured JSON access line per request, in the same shape as every other log
    line. The request path only queues the finished request's context; a writer thread
    formats lines with orjson and writes them in batches (through the `logging` module
    this cost a quarter of the gateway's throughput at 20 concurrent requests)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._queue: queue.SimpleQueue[tuple[float, RequestContext] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def record(self, ctx: RequestContext) -> None:
        self._queue.put((time.time(), ctx))

    def _run(self) -> None:
        running = True
        while running:
            batch = drain(self._queue)
            running = None not in batch
            lines = [line(at, access_fields(ctx)) for item in batch if item is not None
                     for at, ctx in (item,)]  # fmt: skip
            try:
                self.stream.write("".join(lines))
                self.stream.flush()
            except (OSError, ValueError):  # stderr closed: logging must not take the gateway down
                pass

    async def aclose(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)


def access_fields(ctx: RequestContext) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        "method": ctx.method,
        "path": ctx.path,
        "status": ctx.status,
        "latency_ms": round(ctx.latency_s * 1000, 3),
    }
    for key in ("model", "provider", "upstream_model", "key_id", "error_type"):
        value = getattr(ctx, key)
        if value is not None:
            fields[key] = value
    if ctx.stream:
        fields["stream"] = True
    if ctx.client_disconnected:
        fields["client_disconnected"] = True
    return fields


BATCH_INTERVAL_S = 0.02


def drain(
    items: queue.SimpleQueue[T] | queue.Queue[T],
    interval_s: float = BATCH_INTERVAL_S,
    timeout_s: float | None = None,
    closing: threading.Event | None = None,
) -> list[T]:
    """Block for one item (at most `timeout_s`: then an empty batch), give others
    `interval_s` to pile up (cut short once `closing` is set), then take them all: a
    telemetry thread wakes (and takes the GIL from the event loop) per batch, not per
    request (a wake-up per request cost the event loop ~60 us a request here)."""
    try:
        batch = [items.get(timeout=timeout_s)]
    except queue.Empty:
        return []
    if closing is None:
        time.sleep(interval_s)
    else:
        closing.wait(interval_s)
    while True:
        try:
            batch.append(items.get_nowait())
        except queue.Empty:
            return batch


def line(at: float, fields: dict[str, Any]) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    head = {"ts": stamp, "level": "info", "logger": "gateway.access", "msg": "request"}
    return orjson.dumps({**head, **fields}).decode() + "\n"
