"""Spans exported by a child process: what crosses the pipe, flush on shutdown, a child
that dies."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from gateway.telemetry import span_process
from gateway.telemetry.otlp import SCOPE, gateway_resource
from gateway.telemetry.span_process import SpanProcess, from_record, to_record
from tests.telemetry.otlp_receiver import HttpReceiver

TRACE, SPAN, PARENT = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 0xB7AD6B7169203331


def span(name: str = "chat up-gpt") -> ReadableSpan:
    state = TraceState.from_header(["vendor=x"])
    ctx = SpanContext(TRACE, SPAN, False, TraceFlags(1), state)
    parent = SpanContext(TRACE, PARENT, True, TraceFlags(1), state)
    attrs: dict[str, Any] = {"gen_ai.request.model": "up-gpt", "gen_ai.usage.input_tokens": 7,
             "gen_ai.request.temperature": 0.2, "gen_ai.response.finish_reasons": ["stop"],
             "gateway.usage.estimated": False}  # fmt: skip
    return ReadableSpan(name, ctx, parent, gateway_resource(), attrs, kind=SpanKind.CLIENT,
                        status=Status(StatusCode.ERROR), start_time=1_000, end_time=2_500,
                        instrumentation_scope=SCOPE)  # fmt: skip


def test_a_span_crosses_the_pipe_unchanged() -> None:
    sent = span()
    record = orjson.loads(orjson.dumps(to_record(sent)))
    got = from_record(record, gateway_resource(), SCOPE)
    assert (got.name, got.kind, got.start_time, got.end_time) == (
        "chat up-gpt",
        SpanKind.CLIENT,
        1_000,
        2_500,
    )
    assert got.context == sent.context and got.context.trace_state == sent.context.trace_state
    assert got.parent == sent.parent and got.parent is not None and got.parent.is_remote
    assert dict(got.attributes or {}) == dict(sent.attributes or {})
    assert got.status.status_code is StatusCode.ERROR
    assert got.resource == sent.resource and got.instrumentation_scope == SCOPE


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the shutdown flushes
        yield receiver


def test_shutdown_flushes_what_the_child_holds(receiver: HttpReceiver) -> None:
    process = SpanProcess()
    process.send([span(f"s{i}") for i in range(300)])
    process.shutdown()  # the child exits only after its exporter has sent everything
    assert sorted(s.name for s in receiver.received.spans) == sorted(f"s{i}" for i in range(300))
    assert receiver.received.spans[0].attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert process.dropped == 0


def test_a_dead_child_costs_its_spans_and_is_replaced(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = SpanProcess()
    process._child.kill()
    process._child.wait()
    process.send([span("lost")])  # too soon to restart: counted, never raised
    assert process.dropped == 1
    monkeypatch.setattr(span_process, "RESTART_AFTER_S", 0.0)
    process.send([span("kept")])
    process.shutdown()
    assert [s.name for s in receiver.received.spans] == ["kept"]


def sig_ignored(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))


def test_the_child_outlives_signals_until_its_pipe_closes(receiver: HttpReceiver) -> None:
    import signal

    process = SpanProcess()
    process.send([span("before")])
    ignored = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    deadline = time.monotonic() + 30
    while int(sig_ignored(process._child.pid), 16) & ignored != ignored:  # child still starting
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process._child.send_signal(signal.SIGINT)
    process._child.send_signal(signal.SIGTERM)
    process.send([span("after")])
    process.shutdown()
    assert process._child.returncode == 0
    assert sorted(s.name for s in receiver.received.spans) == ["after", "before"]
