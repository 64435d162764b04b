"""A misbehaving OTLP collector: down for a while, or accepting connections and never
answering. Spans of requests made meanwhile are held (bounded) and delivered when it is
back; the export process's complaints are JSON log lines, rate-limited; the serving
process answers throughout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import StatusCode

from benchmarks.mock_upstream import free_port
from gateway.telemetry.export_process import ExportProcess, from_record, span_record
from gateway.telemetry.otlp import SCOPE, gateway_resource
from gateway.telemetry.retain import RetainingSpanExporter
from tests.faults.conftest import CHAT, gateway_on
from tests.faults.raw_upstream import RawUpstream, json_answer
from tests.telemetry.otlp_receiver import BlackHole, HttpReceiver

OK = orjson.dumps({"id": "c", "object": "chat.completion", "model": "up",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"},
                                "finish_reason": "stop"}]})  # fmt: skip


def record(name: str) -> list[object]:
    return span_record(name, SpanKind.CLIENT, "4bf92f3577b34da6a3ce929d0e0e4736",
                       "00f067aa0ba902b7", None, False, "01", None, StatusCode.UNSET, 1, 2,
                       {"k": 1})  # fmt: skip


@pytest.fixture
def otlp_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    port = free_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
    yield port


def wait_for(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_spans_made_while_the_collector_is_down_arrive_when_it_is_back(
    otlp_port: int, capfd: pytest.CaptureFixture[str]
) -> None:
    process = ExportProcess()
    for batch in range(10):
        process.send([record(f"s{batch}-{i}") for i in range(50)], [])
        time.sleep(0.1)
    time.sleep(1.5)  # several failed attempts
    with HttpReceiver(port=otlp_port) as receiver:
        wait_for(lambda: len(receiver.received.spans) >= 500)
        process.shutdown()
    names = sorted(s.name for s in receiver.received.spans)
    assert names == sorted(f"s{b}-{i}" for b in range(10) for i in range(50))
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert lines, "the outage was not logged"
    docs = [orjson.loads(line) for line in lines]  # every line is a JSON log line
    assert all({"ts", "level", "logger", "msg"} <= set(doc) for doc in docs)
    assert len(docs) < 20  # rate-limited, not a line per retry
    assert any("held spans delivered" in doc["msg"] for doc in docs)


def test_a_collector_that_never_answers_does_not_slow_the_gateway(
    otlp_port: int, tmp_path: Path
) -> None:
    hole = BlackHole(otlp_port)
    try:
        with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path) as (_, client):
            for _ in range(100):
                started = time.perf_counter()
                assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
                # generous: a request that waited on the exporter's 1 s timeout would show
                assert time.perf_counter() - started < 0.5
            hole.close()
            with HttpReceiver(port=otlp_port) as receiver:
                wait_for(lambda: len(receiver.received.spans) >= 200)
    finally:
        hole.close()


class Failing(SpanExporter):
    def __init__(self) -> None:
        self.up = False
        self.got: list[str] = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        if not self.up:
            return SpanExportResult.FAILURE
        self.got += [s.name for s in spans]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_backlog_is_bounded_and_counts_what_it_drops() -> None:
    inner = Failing()
    drops: list[int] = []
    exporter = RetainingSpanExporter(inner, max_spans=100, retry_s=0.05, on_drop=drops.append)
    spans = [from_record(record(f"s{i}"), gateway_resource(), SCOPE) for i in range(250)]
    for i in range(0, 250, 50):
        assert exporter.export(spans[i : i + 50]) is SpanExportResult.SUCCESS
    assert exporter.held == 100 and exporter.dropped == 150 and sum(drops) == 150
    inner.up = True
    wait_for(lambda: not exporter.in_outage, timeout=5)
    assert inner.got == [f"s{i}" for i in range(150, 250)]  # the newest, in order
    exporter.export(spans[:1])  # direct again
    assert inner.got[-1] == "s0"
    exporter.shutdown()
