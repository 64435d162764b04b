"""Structured JSON logs on stderr, configured once at startup."""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import time
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        return orjson.dumps(doc, default=str).decode()


class DeferredQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writer thread unformatted: the event loop never formats
    JSON nor blocks on a slow stderr pipe."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # tracebacks hold frames; keep the text only
        return record


class RateLimit(logging.Filter):
    """At most one record per logger and message template every `interval_s`; the next one
    let through says how many were held back. An exporter retrying against a dead
    collector would otherwise write a line per attempt, per batch."""

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, suppressed = self._last.get(key, (0.0, 0))
        if now - last < self.interval_s:
            self._last[key] = (last, suppressed + 1)
            return False
        if len(self._last) > 1000:  # templates, not values: bounded in practice; be sure
            self._last.clear()
        self._last[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar messages suppressed)"
        return True


def configure_child_logging(level: str = "info") -> None:
    """A helper process's logging: the same JSON lines on the shared stderr, written
    directly (it has no event loop to protect), rate-limited per message."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def configure_logging(
    level: str = "info", access_log: bool = True
) -> logging.handlers.QueueListener:
    """JSON lines on stderr, written by a background thread; stop the returned listener
    at exit to flush what is queued."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=False)
    listener.start()
    root = logging.getLogger()
    root.handlers[:] = [DeferredQueueHandler(records)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return listener
