"""OTLP span export in a child process.

Encoding spans to protobuf and posting them is CPU work in Python (~37 us a request for
its two spans, in batches of 512; under load the exporter threads held a fifth of the
serving process's GIL, py-spy). A gateway serves on one core per process, so that work
moves to a child process of its own: the recorder thread hands it each batch of finished
spans as one length-prefixed JSON frame over a pipe, and the child rebuilds them and runs
the SDK's `BatchSpanProcessor` and OTLP exporter (configured by the same OTEL_* variables,
which it inherits).

Lifecycle: the child starts with the sink and stops when its stdin closes (the sink's
`shutdown`, or the gateway dying), after flushing what it holds; it ignores SIGINT and
SIGTERM so that a Ctrl-C or a process-group signal cannot cut that flush short. If it
dies, the spans sent meanwhile are counted as dropped and a new child starts (at most
every RESTART_AFTER_S).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import IO, Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

log = logging.getLogger("gateway.telemetry")
RESTART_AFTER_S = 5.0
SHUTDOWN_TIMEOUT_S = 30.0


def to_record(span: ReadableSpan) -> list[Any]:
    """A span as plain JSON data (trace and span ids as hex: JSON ints stop at 64 bits)."""
    ctx, parent = span.context, span.parent
    assert ctx is not None
    state = ctx.trace_state.to_header() if ctx.trace_state else None
    return [
        span.name, span.kind.value, f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}",
        f"{parent.span_id:016x}" if parent else None, bool(parent and parent.is_remote),
        int(ctx.trace_flags), state or None, span.status.status_code.value,
        span.start_time, span.end_time, dict(span.attributes or {}),
    ]  # fmt: skip


def from_record(record: list[Any], resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    name, kind, trace_id, span_id, parent_id, remote, flags, state, status, start, end, attrs = (
        record
    )
    trace_state = TraceState.from_header([state]) if state else None

    def context(span: str, is_remote: bool) -> SpanContext:
        return SpanContext(int(trace_id, 16), int(span, 16), is_remote, TraceFlags(flags),
                           trace_state)  # fmt: skip

    return ReadableSpan(
        name, context(span_id, False), context(parent_id, remote) if parent_id else None,
        resource, attrs, kind=SpanKind(kind), status=Status(StatusCode(status)),
        start_time=start, end_time=end, instrumentation_scope=scope,
    )  # fmt: skip


class SpanProcess:
    """The parent's end: `send` a batch of spans, `shutdown` to flush and stop."""

    def __init__(self) -> None:
        self.dropped = 0
        self._started_at = 0.0
        self._child = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self._started_at = time.monotonic()
        command = [sys.executable, "-m", "gateway.telemetry.span_process"]
        return subprocess.Popen(command, stdin=subprocess.PIPE, env=os.environ.copy())

    def send(self, spans: list[ReadableSpan]) -> None:
        """From the recorder thread. Never raises: a lost child costs its spans, counted."""
        if not spans:
            return
        if self._child.poll() is not None and not self._restart():
            self.dropped += len(spans)
            return
        frame = orjson.dumps([to_record(s) for s in spans])
        try:
            stdin = self._child.stdin
            assert stdin is not None
            stdin.write(len(frame).to_bytes(4, "big") + frame)
            stdin.flush()
        except (OSError, ValueError):
            self.dropped += len(spans)
            log.error("the span exporter process is gone; its spans are dropped until it restarts")

    def _restart(self) -> bool:
        if time.monotonic() - self._started_at < RESTART_AFTER_S:
            return False
        log.error("the span exporter process exited (%s); starting another", self._child.returncode)
        self._close_pipe()
        self._child = self._start()
        return True

    def _close_pipe(self) -> None:
        try:
            if self._child.stdin is not None:
                self._child.stdin.close()
        except OSError:  # a dead child's pipe may refuse the final flush; it is closed anyway
            pass

    def shutdown(self) -> None:
        """Close the pipe; the child flushes what it holds and exits (blocking: call it
        on a thread)."""
        self._close_pipe()
        try:
            self._child.wait(SHUTDOWN_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            log.error("the span exporter process did not flush in time; stopping it")
            self._child.kill()
            self._child.wait()


def frames(stream: IO[bytes]) -> Any:
    """Each frame's records, until the parent closes the pipe."""
    while (head := stream.read(4)) and len(head) == 4:
        body = stream.read(int.from_bytes(head, "big"))
        yield from orjson.loads(body)


def main() -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from gateway.telemetry.otlp import SCOPE, gateway_resource, otlp_span_exporter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stop on EOF only, after the flush
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    resource = gateway_resource()
    processor = BatchSpanProcessor(otlp_span_exporter(), max_queue_size=8192)
    try:
        for record in frames(sys.stdin.buffer):
            processor.on_end(from_record(record, resource, SCOPE))
    finally:
        processor.shutdown()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
