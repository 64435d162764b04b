"""The OTLP encoding of spans equals the SDK's own, field for field and byte for byte."""

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from gateway.telemetry.export_process import from_record, span_record
from gateway.telemetry.otlp import SCOPE, gateway_resource
from gateway.telemetry.spans_to_otlp import encode_spans

TRACE, SPAN, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331"
ATTRS: dict[str, Any] = {
    "gen_ai.request.model": "up-gpt", "gen_ai.usage.input_tokens": 7, "server.port": 1,
    "gen_ai.request.temperature": 0.2, "gen_ai.usage.cost": 1.0, "gateway.usage.estimated": True,
    "gen_ai.response.finish_reasons": ["stop", "length"], "gateway.guardrail.entities": [],
    "gateway.raw": b"\x00\x01", "gen_ai.request.seed": -3,
}  # fmt: skip


def records() -> list[ReadableSpan]:
    """Spans as the export process rebuilds them: every kind, remote and local parents,
    a trace state, error status, every attribute type the gateway writes."""
    resource = gateway_resource()
    made = [
        span_record("POST /v1/chat/completions", SpanKind.SERVER, TRACE, SPAN, PARENT, True, "01",
                    "vendor=x,other=y", StatusCode.ERROR, 1_000, 2_500, ATTRS),
        span_record("chat up-gpt", SpanKind.CLIENT, TRACE, "00f067aa0ba902b8", SPAN, False, "01",
                    None, StatusCode.UNSET, 1_100, 2_400, {**ATTRS, "server.port": 2}),
        span_record("apply_guardrail pii", SpanKind.INTERNAL, TRACE, "00f067aa0ba902b9", SPAN,
                    False, "01", None, StatusCode.OK, 1_200, 1_300, {}),
        span_record("root", SpanKind.SERVER, TRACE, SPAN, None, False, "00", None,
                    StatusCode.UNSET, 5, 6, {"server.port": True}),
    ]  # fmt: skip
    return [from_record(r, resource, SCOPE) for r in made]


@pytest.fixture
def sdk_spans() -> Iterator[list[ReadableSpan]]:
    """Spans made by the SDK's tracer: events, links, a status description, two resources
    and a scope with attributes."""
    spans: list[ReadableSpan] = []
    for service in ("a", "b"):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t", "1.0", schema_url="https://s", attributes={"k": "v"})
        other = provider.get_tracer("other")
        linked = SpanContext(int(TRACE, 16), int(PARENT, 16), True, TraceFlags(1),
                             TraceState([("a", "1")]))  # fmt: skip
        with (
            tracer.start_as_current_span(
                "outer", kind=SpanKind.SERVER, links=[Link(linked, {"n": 1})]
            ),
            other.start_as_current_span("inner", attributes={"x": [1.5, 2.5]}) as inner,
        ):
            inner.add_event("seen", {"at": "here", "ok": False})
            inner.set_status(Status(StatusCode.ERROR, "boom"))
        spans += exporter.get_finished_spans()
        provider.shutdown()
    yield spans


def assert_same(spans: list[ReadableSpan]) -> None:
    ours, theirs = encode_spans(spans), sdk_encode(spans)
    assert ExportTraceServiceRequest.FromString(ours) == theirs
    assert ours == theirs.SerializePartialToString()


def test_the_gateways_spans_encode_as_the_sdk_encodes_them() -> None:
    assert_same(records())
    assert_same(records() * 3)  # repeated pairs come from the cache, unchanged


def test_a_span_without_resource_attributes_or_scope_encodes_as_the_sdks() -> None:
    context = SpanContext(int(TRACE, 16), int(SPAN, 16), False, TraceFlags(1))
    bare = ReadableSpan("bare", context, resource=Resource({}), instrumentation_scope=None,
                        start_time=1, end_time=2)  # fmt: skip
    assert_same([bare])


def test_spans_of_the_sdks_tracer_encode_as_the_sdk_encodes_them(
    sdk_spans: list[ReadableSpan],
) -> None:
    assert_same(sdk_spans)
    decoded = ExportTraceServiceRequest.FromString(encode_spans(sdk_spans))
    assert [len(r.scope_spans) for r in decoded.resource_spans] == [2, 2]  # grouped


def test_true_1_and_1_0_stay_different_values() -> None:
    spans = records()
    decoded = ExportTraceServiceRequest.FromString(encode_spans(spans))
    ports = [
        kv.value
        for s in decoded.resource_spans[0].scope_spans[0].spans
        for kv in s.attributes
        if kv.key in ("server.port", "gen_ai.usage.cost")
    ]
    assert [p.WhichOneof("value") for p in ports] == ["int_value", "double_value", "int_value",
                                                      "double_value", "bool_value"]  # fmt: skip


def test_an_attribute_it_cannot_encode_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    span = from_record(
        span_record("s", SpanKind.INTERNAL, TRACE, SPAN, None, False, "01", None,
                    StatusCode.UNSET, 1, 2, {"ok": "yes", "bad": object(), "huge": 2**70}),
        gateway_resource(), SCOPE,
    )  # fmt: skip
    decoded = ExportTraceServiceRequest.FromString(encode_spans([span]))
    assert [kv.key for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes] == ["ok"]
    assert "bad" in caplog.text and "huge" in caplog.text
