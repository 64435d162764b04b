"""Spans that survive a collector outage: a span exporter wrapper for the export process.

The SDK's exporter retries a failed batch for its timeout (10 s) and then the batch is
gone; while it retries, the `BatchSpanProcessor`'s queue fills and drops whatever else
arrives. Wrapped, the first failure switches to *outage* mode: batches go straight to a
bounded backlog (no network call, so the processor's queue keeps draining), and a
retry thread offers the oldest batch to the collector every `retry_s` (doubling to
`MAX_RETRY_S`). When one goes through, the backlog is sent in order and export goes
direct again. Past `max_spans` held, the oldest batches are dropped and counted
(`dropped`, logged); at shutdown the backlog gets one last try within `deadline_s`.

Memory: a held span is its SDK object (~1-2 KB with the gateway's attributes), so the
default bound of 50,000 spans is ~100 MB at most, in the export process, never in the
serving one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("gateway.telemetry.otlp")
MAX_RETRY_S = 5.0  # a probe is one small request: a collector back is seen within 5 s


class RetainingSpanExporter(SpanExporter):
    def __init__(
        self,
        inner: SpanExporter,
        max_spans: int = 50_000,
        retry_s: float = 0.5,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = inner
        self.max_spans = max_spans
        self.retry_s = retry_s
        self.on_drop = on_drop
        self.backlog: deque[Sequence[ReadableSpan]] = deque()
        self.held = 0
        self.dropped = 0
        self.delivered_late = 0
        self._send_lock = threading.Lock()  # one export call to the collector at a time
        self._state = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._retry_loop, name="otlp-retry", daemon=True)
        self._thread.start()

    @property
    def in_outage(self) -> bool:
        return bool(self.backlog)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """From the processor's worker: direct while the collector answers; in an outage,
        into the backlog at once."""
        with self._state:
            if self.backlog:
                self._keep(spans)
                return SpanExportResult.SUCCESS
        with self._send_lock:
            result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            with self._state:
                if not self.backlog:
                    log.warning("OTLP collector unavailable: holding spans (at most %d) and "
                                "retrying", self.max_spans)  # fmt: skip
                self._keep(spans)
                self._state.notify()
        return SpanExportResult.SUCCESS  # held, not lost: the processor need not log it

    def _keep(self, spans: Sequence[ReadableSpan]) -> None:
        self.backlog.append(spans)
        self.held += len(spans)
        dropped = 0
        while self.held > self.max_spans and len(self.backlog) > 1:
            old = self.backlog.popleft()
            self.held -= len(old)
            dropped += len(old)
        if dropped:
            self.dropped += dropped
            log.error("OTLP backlog full: %d oldest spans dropped (%d in all)", dropped,
                      self.dropped)  # fmt: skip
            if self.on_drop is not None:
                self.on_drop(dropped)

    def _retry_loop(self) -> None:
        delay = self.retry_s
        while True:
            with self._state:
                while not self.backlog and not self._closing:
                    self._state.wait()
                if self._closing:
                    return
                self._state.wait(delay)
                if self._closing:
                    return
            delay = self.retry_s if self._send_backlog() else min(delay * 2, MAX_RETRY_S)

    def _send_backlog(self, deadline: float | None = None) -> bool:
        """Send held batches oldest first; False at the first that fails (it stays)."""
        sent = 0
        while deadline is None or time.monotonic() < deadline:
            with self._state:
                if not self.backlog:
                    break
                batch = self.backlog[0]
            with self._send_lock:
                ok = self.inner.export(batch) is SpanExportResult.SUCCESS
            if not ok:
                return False
            with self._state:
                if self.backlog and self.backlog[0] is batch:
                    self.backlog.popleft()
                    self.held -= len(batch)
            sent += len(batch)
        if sent:
            self.delivered_late += sent
            log.info("OTLP collector back: %d held spans delivered", sent)
        return not self.backlog

    def shutdown(self, timeout_millis: float = 10_000) -> None:
        """The processor passes what is left of its shutdown time; the backlog gets one
        last try within it (at most 10 s: the parent waits 15 s for this process)."""
        deadline_s = min(timeout_millis / 1000, 10.0)
        with self._state:
            self._closing = True
            self._state.notify()
        self._thread.join()
        if self.backlog and not self._send_backlog(time.monotonic() + deadline_s):
            lost = self.held
            self.dropped += lost
            log.error("OTLP collector still unavailable at shutdown: %d held spans lost", lost)
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)
