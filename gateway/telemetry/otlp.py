"""OTLP plumbing shared by the sink and its span exporter process: whether OTEL_* asks for
export, the exporters it asks for, and the gateway's resource."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from gateway import __version__

SCOPE = InstrumentationScope("llm-gateway", __version__)


def otlp_configured() -> bool:
    names = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")  # fmt: skip
    return os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true" and any(
        os.environ.get(n) for n in names
    )


def otlp_protocol() -> str:
    return os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")


def otlp_span_exporter() -> SpanExporter:
    """The OTLP span exporter OTEL_EXPORTER_OTLP_PROTOCOL asks for (default http/protobuf):
    the SDK's, encoding with `spans_to_otlp`."""
    if otlp_protocol() == "grpc":
        from gateway.telemetry.otlp_grpc import GRPCSpanExporter

        return GRPCSpanExporter()
    from gateway.telemetry.otlp_http import HTTPSpanExporter

    return HTTPSpanExporter()


def otlp_metric_exporter() -> Any:
    if otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
    return OTLPMetricExporter()


def gateway_resource() -> Resource:
    """service.name, service.version and what OTEL_RESOURCE_ATTRIBUTES adds."""
    created = Resource.create({"service.name": "llm-gateway", "service.version": __version__})
    return HashedResource(created.attributes, created.schema_url)


class HashedResource(Resource):
    """A Resource that hashes once: the OTLP encoder groups spans by resource, and the
    SDK's hash JSON-dumps every attribute, for every span (~4% of the gateway's CPU
    under load with spans on, py-spy)."""

    def __init__(self, attributes: Any, schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)
