"""The SDK's OTLP/HTTP span exporter, encoding with `spans_to_otlp` (about twice as fast
as the SDK's encoder; the same bytes) and posting through the SDK's own HTTP client, so its
endpoint, headers, compression, TLS, timeout and retry settings (OTEL_EXPORTER_OTLP_*)
all apply unchanged.

The client is an attribute of the SDK's exporter, not a public API: where an SDK version
has none, or the exporter is shut down, or a batch is over its size limit, `export` is
the SDK's own, which logs and refuses those cases itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from gateway.telemetry.spans_to_otlp import encode_spans


class HTTPSpanExporter(OTLPSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        limit = getattr(self, "_max_request_size", None)
        if client is None or limit is None or getattr(self, "_shutdown", True):
            return super().export(spans)
        data = encode_spans(spans)
        if len(data) > limit:
            return super().export(spans)
        sent = client.export(data)
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE
