"""OTLP export in a child process.

Building spans and metric points with the OpenTelemetry SDK, encoding them to protobuf
and posting them is CPU work in Python (~100 us a request with two spans and the GenAI
metrics; under load the exporter and recorder threads held a third of the serving
process's GIL, py-spy). A gateway serves on one core per process, so that work moves to
a child process of its own: the recorder thread turns each batch of finished requests
into plain span records and metric points, and hands them over a pipe as one
length-prefixed JSON frame; the child rebuilds them and runs the SDK's
`BatchSpanProcessor`, `MeterProvider` and OTLP exporters (configured by the same OTEL_*
variables, which it inherits).

The child only parses frames and queues their contents (its span queue drops when full,
like the SDK's in-process one), so it keeps up with the pipe, and a slow collector backs up
into the child's queues, never into the gateway.

Lifecycle: the child starts with the sink and stops when its stdin closes (the sink's
`shutdown`, or the gateway dying), after flushing what it holds; it ignores SIGINT and
SIGTERM so that a Ctrl-C or a process-group signal cannot cut that flush short. If it
dies, what was sent meanwhile is counted as dropped and a new child starts (at most every
RESTART_AFTER_S).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from gateway.telemetry.metrics import Point

log = logging.getLogger("gateway.telemetry")
RESTART_AFTER_S = 5.0
SHUTDOWN_TIMEOUT_S = 15.0
BUFFER_ENV = "GATEWAY_OTLP_BUFFER_SPANS"  # spans held through a collector outage
DEFAULT_BUFFER_SPANS = 50_000
LOG_LEVEL_ENV = "GATEWAY_LOG_LEVEL"


SpanRecord = list[Any]  # see `span_record`


def span_record(name: str, kind: SpanKind, trace_id: str, span_id: str, parent: str | None,
                remote_parent: bool, flags: str, tracestate: str | None, status: StatusCode,
                start_ns: int, end_ns: int, attributes: dict[str, Any]) -> SpanRecord:  # fmt: skip
    """A span as plain JSON data (ids as the hex strings requests carry them in)."""
    return [name, kind.value, trace_id, span_id, parent, remote_parent, flags, tracestate,
            status.value, start_ns, end_ns, attributes]  # fmt: skip


# the few values a record's enums take, built once (Enum calls are ~0.3 us each)
KINDS = {kind.value: kind for kind in SpanKind}
STATUSES = {code.value: Status(code) for code in StatusCode}
FLAGS = {"00": TraceFlags(0), "01": TraceFlags(1)}


def from_record(record: list[Any], resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    name, kind, trace_id, span_id, parent_id, remote, flags, state, status, start, end, attrs = (
        record
    )
    trace_state = TraceState.from_header([state]) if state else None
    trace, trace_flags = int(trace_id, 16), FLAGS.get(flags) or TraceFlags(int(flags, 16))
    context = SpanContext(trace, int(span_id, 16), False, trace_flags, trace_state)
    parent = None
    if parent_id:
        parent = SpanContext(trace, int(parent_id, 16), remote, trace_flags, trace_state)
    return ReadableSpan(
        name, context, parent, resource, attrs, kind=KINDS[kind], status=STATUSES[status],
        start_time=start, end_time=end, instrumentation_scope=scope,
    )  # fmt: skip


class ExportProcess:
    """The parent's end: `send` a batch of spans and points, `shutdown` to flush and stop."""

    def __init__(self) -> None:
        self.dropped = 0
        self._started_at = 0.0
        self._child = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self._started_at = time.monotonic()
        command = [sys.executable, "-m", "gateway.telemetry.export_process"]
        return subprocess.Popen(command, stdin=subprocess.PIPE, env=os.environ.copy())

    def send(self, spans: list[SpanRecord], points: list[Point]) -> None:
        """From the recorder thread. Never raises: a lost child costs its spans, counted
        in `dropped` (and its metric points)."""
        if not spans and not points:
            return
        if self._child.poll() is not None and not self._restart():
            self.dropped += len(spans)
            return
        frame = orjson.dumps({"spans": spans, "points": points})
        try:
            stdin = self._child.stdin
            assert stdin is not None
            stdin.write(len(frame).to_bytes(4, "big") + frame)
            stdin.flush()
        except (OSError, ValueError):
            self.dropped += len(spans)
            log.error("the OTLP exporter process is gone; spans are dropped until it restarts")

    def _restart(self) -> bool:
        if time.monotonic() - self._started_at < RESTART_AFTER_S:
            return False
        log.error("the OTLP exporter process exited (%s); starting another", self._child.returncode)
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
            log.error("the OTLP exporter process did not flush in time; stopping it")
            self._child.kill()
            self._child.wait()


def frames(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Each frame, until the parent closes the pipe."""
    while (head := stream.read(4)) and len(head) == 4:
        yield orjson.loads(stream.read(int.from_bytes(head, "big")))


def main() -> None:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from gateway.logs import configure_child_logging
    from gateway.telemetry.metrics import OTelMetrics
    from gateway.telemetry.otlp import (
        SCOPE,
        gateway_resource,
        otlp_metric_exporter,
        otlp_span_exporter,
    )
    from gateway.telemetry.retain import RetainingSpanExporter

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stop on EOF only, after the flush
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_child_logging(os.environ.get(LOG_LEVEL_ENV, "info"))
    resource = gateway_resource()
    metrics = OTelMetrics(resource, [PeriodicExportingMetricReader(otlp_metric_exporter())])
    exporter = RetainingSpanExporter(
        otlp_span_exporter(),
        max_spans=int(os.environ.get(BUFFER_ENV) or DEFAULT_BUFFER_SPANS),
        on_drop=lambda n: metrics.record("gateway.telemetry.dropped", n, {}),
    )
    processor = BatchSpanProcessor(exporter, max_queue_size=8192)
    try:
        for frame in frames(sys.stdin.buffer):
            for record in frame["spans"]:
                processor.on_end(from_record(record, resource, SCOPE))
            for name, value, labels in frame["points"]:
                metrics.record(name, value, labels)
    finally:
        processor.shutdown()  # type: ignore[no-untyped-call]  # the exporter's too
        metrics.shutdown()


if __name__ == "__main__":
    main()
