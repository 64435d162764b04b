"""Metric points: counters folded per batch before they cross to the export process."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from gateway.telemetry.metrics import OTelMetrics, Point, fold_counters
from gateway.telemetry.otlp import gateway_resource

OK = {"http.response.status_code": 200, "gen_ai.request.model": "m"}
FAILED = {"http.response.status_code": 502, "gen_ai.request.model": "m"}
GENAI = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}


def batch() -> list[Point]:
    return [
        ("gateway.requests", 1, OK),
        ("gen_ai.client.operation.duration", 0.25, GENAI),
        ("gateway.requests", 1, dict(OK)),  # equal labels, another dict
        ("gateway.requests", 1, FAILED),
        ("gen_ai.client.operation.duration", 0.5, GENAI),
        ("gateway.cost", 0.25, GENAI),
        ("gateway.cost", 0.5, GENAI),
    ]


def test_counters_with_equal_labels_are_summed_histograms_kept_in_order() -> None:
    folded = fold_counters(batch())
    assert [p for p in folded if p[0] == "gen_ai.client.operation.duration"] == [
        ("gen_ai.client.operation.duration", 0.25, GENAI),
        ("gen_ai.client.operation.duration", 0.5, GENAI),
    ]
    counters = sorted(
        (n, v, sorted(labels.items())) for n, v, labels in folded if "duration" not in n
    )
    assert counters == [
        ("gateway.cost", 0.75, sorted(GENAI.items())),
        ("gateway.requests", 1, sorted(FAILED.items())),
        ("gateway.requests", 2, sorted(OK.items())),
    ]


def collected(points: list[Point]) -> dict[tuple[str, Any], Any]:
    reader = InMemoryMetricReader()
    metrics = OTelMetrics(gateway_resource(), [reader])
    for name, value, labels in points:
        metrics.record(name, value, labels)
    data = reader.get_metrics_data()
    metrics.shutdown()
    assert data is not None
    out: dict[tuple[str, Any], Any] = {}
    for metric in data.resource_metrics[0].scope_metrics[0].metrics:
        for point in metric.data.data_points:
            key = (metric.name, frozenset((point.attributes or {}).items()))
            figures: Any = getattr(point, "value", None)
            if figures is None:  # a histogram
                figures = (point.count, point.sum, point.bucket_counts)  # type: ignore[union-attr]
            out[key] = figures
    return out


def test_a_collector_sees_the_same_sums_and_histograms_folded_or_not() -> None:
    assert collected(fold_counters(batch())) == collected(batch())
