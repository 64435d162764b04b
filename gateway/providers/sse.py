"""Incremental Server-Sent Events parsing (bytes in, events out). Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.providers.http1 import MAX_BODY_BYTES


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: bytes


class EventTooLarge(ValueError):
    """An event (or a line) kept growing past the parser's bound without ending."""


class SSEParser:
    """Feed raw bytes as they arrive; get back every event completed so far.

    Follows the WHATWG event-stream rules that matter for LLM APIs: events end at a
    blank line, `data:` lines join with newlines, comments (`:`) are skipped, and
    CRLF, LF and CR line endings are all accepted.
    """

    def __init__(self, max_event_bytes: int = MAX_BODY_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._size = 0  # bytes of the event being read (its data lines and the open line)
        self._buffer = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        if len(self._buffer) + self._size > self.max_event_bytes:
            raise EventTooLarge(f"an event over {self.max_event_bytes} bytes")
        if b"\r" in self._buffer:
            if self._buffer.endswith(b"\r"):
                return []  # the \n of a \r\n may still be on its way
            self._buffer = self._buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, self._buffer = self._buffer.split(b"\n")
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SSEEvent(self._event, b"\n".join(self._data)))
                self._event, self._data, self._size = None, [], 0
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                self._data.append(value)
                self._size += len(value)
            elif field == b"event":
                self._event = value.decode("utf-8", "replace")
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: an event missing its final blank line still counts."""
        return self.feed(b"\n\n") if (self._buffer or self._data) else []
