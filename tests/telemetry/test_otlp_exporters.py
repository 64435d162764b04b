"""The OTLP span exporters: over HTTP, their own encoding through the SDK's HTTP client
and settings, and the SDK's own handling where it steps aside; over gRPC, their own
encoding in the SDK's exporter."""

from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_trace_exporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from benchmarks.mock_upstream import free_port
from gateway.telemetry.otlp import otlp_span_exporter
from gateway.telemetry.otlp_grpc import GRPCSpanExporter
from gateway.telemetry.otlp_http import HTTPSpanExporter
from tests.telemetry.otlp_receiver import GrpcReceiver, HttpReceiver
from tests.telemetry.test_spans_to_otlp import ATTRS, records


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        yield receiver


def test_the_http_protocol_gets_this_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert isinstance(otlp_span_exporter(), HTTPSpanExporter)


def test_spans_go_out_without_the_sdks_encoder(
    receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK version installed has what the fast path uses: the SDK's own `export` is
    never called, and the settings (gzip here) still apply."""

    def refuse(*args: object) -> SpanExportResult:
        raise AssertionError("the SDK's export was used")

    monkeypatch.setattr(OTLPSpanExporter, "export", refuse)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    exporter = HTTPSpanExporter()
    assert exporter.export(records()) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]
    names = [s.name for s in receiver.received.spans]
    assert names == ["POST /v1/chat/completions", "chat up-gpt", "apply_guardrail pii", "root"]
    assert receiver.received.spans[0].attributes == ATTRS


def test_a_collector_that_is_not_there_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    exporter = HTTPSpanExporter()
    assert exporter.export(records()) is SpanExportResult.FAILURE
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_an_oversized_batch_and_a_shut_down_exporter_are_the_sdks_refusals(
    receiver: HttpReceiver,
) -> None:
    small = HTTPSpanExporter(max_request_size=64)
    assert small.export(records()) is SpanExportResult.FAILURE
    exporter = HTTPSpanExporter()
    exporter.shutdown()  # type: ignore[no-untyped-call]
    assert exporter.export(records()) is SpanExportResult.FAILURE
    assert receiver.received.spans == []


def test_grpc_spans_go_out_without_the_sdks_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the SDK's encoder was used")

    monkeypatch.setattr(grpc_trace_exporter, "encode_spans", refuse)
    with GrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        exporter = otlp_span_exporter()
        assert isinstance(exporter, GRPCSpanExporter)
        assert exporter.export(records()) is SpanExportResult.SUCCESS
        exporter.shutdown()
    assert [s.name for s in receiver.received.spans][:2] == [
        "POST /v1/chat/completions",
        "chat up-gpt",
    ]
    assert receiver.received.spans[1].attributes == {**ATTRS, "server.port": 2}
