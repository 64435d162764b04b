"""The SDK's OTLP/gRPC span exporter, building its request message from `spans_to_otlp`'s
bytes (about twice as fast as the SDK's encoder, parse included) through the exporter's
`_translate_data` step; channel, credentials, headers, compression, timeout and retries
stay the SDK's (OTEL_EXPORTER_OTLP_*)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

from gateway.telemetry.spans_to_otlp import encode_spans


class GRPCSpanExporter(OTLPSpanExporter):
    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(
            encode_spans(data)
        )
        return request
