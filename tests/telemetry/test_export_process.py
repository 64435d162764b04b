"""OTLP export by a child process: what crosses the pipe, flush on shutdown, a child that
dies, signals."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import StatusCode

from gateway.telemetry import export_process
from gateway.telemetry.export_process import ExportProcess, SpanRecord, from_record, span_record
from gateway.telemetry.otlp import SCOPE, gateway_resource
from tests.telemetry.otlp_receiver import HttpReceiver

TRACE, SPAN, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331"
ATTRS: dict[str, Any] = {"gen_ai.request.model": "up-gpt", "gen_ai.usage.input_tokens": 7,
                         "gen_ai.request.temperature": 0.2, "gateway.usage.estimated": False,
                         "gen_ai.response.finish_reasons": ["stop"]}  # fmt: skip


def span(name: str = "chat up-gpt") -> SpanRecord:
    return span_record(name, SpanKind.CLIENT, TRACE, SPAN, PARENT, True, "01", "vendor=x",
                       StatusCode.ERROR, 1_000, 2_500, ATTRS)  # fmt: skip


def test_a_span_crosses_the_pipe_unchanged() -> None:
    record = orjson.loads(orjson.dumps(span()))
    got = from_record(record, gateway_resource(), SCOPE)
    assert (got.name, got.kind, got.start_time, got.end_time) == (
        "chat up-gpt",
        SpanKind.CLIENT,
        1_000,
        2_500,
    )
    assert got.context is not None and got.parent is not None
    assert (f"{got.context.trace_id:032x}", f"{got.context.span_id:016x}") == (TRACE, SPAN)
    assert (f"{got.parent.span_id:016x}", got.parent.is_remote) == (PARENT, True)
    assert got.context.trace_flags.sampled and not got.context.is_remote
    assert got.context.trace_state.to_header() == "vendor=x"
    assert dict(got.attributes or {}) == ATTRS
    assert got.status.status_code is StatusCode.ERROR
    assert got.resource == gateway_resource() and got.instrumentation_scope == SCOPE


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the shutdown flushes
        yield receiver


def test_shutdown_flushes_what_the_child_holds(receiver: HttpReceiver) -> None:
    process = ExportProcess()
    process.send([span(f"s{i}") for i in range(300)], [("gateway.requests", 1, {"k": "v"})])
    process.shutdown()  # the child exits only after its exporter has sent everything
    assert sorted(s.name for s in receiver.received.spans) == sorted(f"s{i}" for i in range(300))
    assert receiver.received.spans[0].attributes["gen_ai.response.finish_reasons"] == ["stop"]
    (point,) = receiver.received.metrics["gateway.requests"]  # metric points go the same way
    assert point.as_int == 1
    assert process.dropped == 0


def test_a_dead_child_costs_its_spans_and_is_replaced(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = ExportProcess()
    process._child.kill()
    process._child.wait()
    process.send([span("lost")], [])  # too soon to restart: counted, never raised
    assert process.dropped == 1
    monkeypatch.setattr(export_process, "RESTART_AFTER_S", 0.0)
    process.send([span("kept")], [])
    process.shutdown()
    assert [s.name for s in receiver.received.spans] == ["kept"]


def sig_ignored(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))


def test_the_child_outlives_signals_until_its_pipe_closes(receiver: HttpReceiver) -> None:
    import signal

    process = ExportProcess()
    process.send([span("before")], [])
    ignored = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    deadline = time.monotonic() + 30
    while int(sig_ignored(process._child.pid), 16) & ignored != ignored:  # child still starting
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process._child.send_signal(signal.SIGINT)
    process._child.send_signal(signal.SIGTERM)
    process.send([span("after")], [])
    process.shutdown()
    assert process._child.returncode == 0
    assert sorted(s.name for s in receiver.received.spans) == ["after", "before"]
