"""The gateway's metrics, declared once and recorded into one or two backends:

- Prometheus (`/metrics`), always: `prometheus_client` records a point in ~3 us;
- the OpenTelemetry SDK, only when OTLP export is configured (~12 us a point).

Names and units follow the GenAI semantic conventions; the Prometheus names are the ones
OpenTelemetry's Prometheus exporter would give them, so dashboards work with either path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from gateway import __version__

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                   40.96, 81.92)  # fmt: skip
GENAI = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
         "gen_ai.response.model", "error.type")  # fmt: skip

REQUEST_LABELS = ("http.response.status_code", "gen_ai.request.model", "gen_ai.provider.name",
                  "gateway.key_id")  # fmt: skip


@dataclass(frozen=True)
class Spec:
    name: str
    unit: str
    description: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None  # None: a counter (or a gauge)
    gauge: bool = False  # a value set, not added

    @property
    def prometheus_name(self) -> str:
        base = self.name.replace(".", "_")
        return base + "_seconds" if self.unit == "s" else base


SPECS = {
    spec.name: spec
    for spec in (
        Spec("gen_ai.client.token.usage", "{token}", "Number of input and output tokens used",
             (*GENAI, "gen_ai.token.type"), TOKEN_BUCKETS),
        Spec("gen_ai.client.operation.duration", "s", "GenAI operation duration", GENAI,
             SECONDS_BUCKETS),
        Spec("gen_ai.client.operation.time_to_first_chunk", "s",
             "Time to the first chunk of a streamed response", GENAI, SECONDS_BUCKETS),
        Spec("gateway.requests", "{request}", "Requests by status", REQUEST_LABELS),
        Spec("gateway.cost", "{USD}", "Cost of requests in US dollars",
             (*GENAI[:4], "gateway.key_id", "gateway.prompt_version")),
        Spec("gateway.cache.lookups", "{lookup}", "Cache lookups by result",
             ("gateway.cache.status", "gen_ai.request.model")),
        Spec("gateway.cache.saved", "{USD}", "What cache hits would have cost upstream",
             ("gen_ai.request.model", "gateway.key_id")),
        Spec("gateway.cache.verifications", "{verification}",
             "Semantic hits checked upstream, by outcome (mismatch: a false hit)",
             ("gateway.cache.verification", "gen_ai.request.model")),
        Spec("gateway.routing.attempts", "{attempt}",
             "Upstream attempts by how they ended (ok, retry, fallback, failed)",
             ("gateway.attempt.outcome", "gateway.target")),
        Spec("gateway.routing.breaker_state", "1",
             "Circuit breaker per target: 0 closed, 1 half-open, 2 open", ("gateway.target",),
             gauge=True),
        Spec("gateway.routing.retry_budget_exhausted", "{retry}",
             "Retries refused by a model's retry budget", ("gen_ai.request.model",)),
        Spec("gateway.limits.refused", "{request}",
             "Requests refused by a limit or budget (429), by scope kind and limit",
             ("gateway.limit.scope", "gateway.limit")),
        Spec("gateway.limits.degraded", "{request}",
             "Requests let through unenforced while the limit store was down (on_error: open)",
             ()),
        Spec("gateway.limits.budget_alerts", "{alert}",
             "Budgets crossing an alert share (limits.alert_at)",
             ("gateway.limit.scope", "gateway.limit", "gateway.alert.share")),
        Spec("gateway.guardrail.actions", "{action}", "Guardrail verdicts by action",
             ("gateway.guardrail", "gateway.guardrail.action")),
        Spec("gateway.connection.faults", "{connection}",
             "Client connections refused (over max_connections) or cut (head or body too slow)",
             ("gateway.fault",)),
        Spec("gateway.probes", "{request}", "Health probes and metric scrapes (not requests)",
             ("url.path", "http.response.status_code")),
        Spec("gateway.telemetry.dropped", "{request}",
             "Requests left out of OpenTelemetry because its queue was full", ()),
    )
}  # fmt: skip


MAX_SERIES = 20_000  # label sets kept; past it new ones are dropped (counted), not grown


class PrometheusMetrics:
    def __init__(self) -> None:
        self.series_dropped = 0
        self.registry = CollectorRegistry()
        self._instruments: dict[str, Any] = {}
        self._bound: dict[tuple[str, ...], Any] = {}  # (name, *label values) -> child
        for spec in SPECS.values():
            labels = [label.replace(".", "_") for label in spec.labels]
            if spec.gauge:
                self._instruments[spec.name] = PromGauge(
                    spec.prometheus_name, spec.description, labels, registry=self.registry
                )
            elif spec.buckets is None:
                name = spec.prometheus_name
                self._instruments[spec.name] = PromCounter(
                    name, spec.description, labels, registry=self.registry
                )
            else:
                self._instruments[spec.name] = PromHistogram(
                    spec.prometheus_name,
                    spec.description,
                    labels,
                    registry=self.registry,
                    buckets=spec.buckets,
                )

    def record(self, name: str, value: float, labels: dict[str, Any]) -> None:
        spec = SPECS[name]
        key = (name, *[str(labels.get(label, "")) for label in spec.labels])
        bound = self._bound.get(key)
        if bound is None and len(self._bound) >= MAX_SERIES:
            self.series_dropped += 1
            return
        if bound is None:  # `labels()` validates and locks on every call: once per series
            instrument = self._instruments[name]
            bound = self._bound[key] = instrument.labels(*key[1:]) if spec.labels else instrument
        if spec.gauge:
            bound.set(value)
        elif spec.buckets is None:
            bound.inc(value)
        else:
            bound.observe(value)


Point = tuple[str, float, dict[str, Any]]  # a metric: name, value, labels


def fold_counters(points: list[Point]) -> list[Point]:
    """A batch's counter increments with equal labels summed into one point (the export
    process then makes one SDK call per label set and batch, not one per request: ~8 us
    each there); histogram observations pass as they are, in order."""
    sums: dict[tuple[str, tuple[tuple[str, Any], ...]], Point] = {}
    out: list[Point] = []
    for name, value, labels in points:
        if SPECS[name].buckets is not None:
            out.append((name, value, labels))
            continue
        key = (name, tuple(labels.items()))
        seen = sums.get(key)
        summed = value + seen[1] if seen and not SPECS[name].gauge else value  # a gauge: last
        sums[key] = (name, summed, labels)
    return out + list(sums.values())


class OTelMetrics:
    """The same metrics through the OpenTelemetry SDK, for OTLP export."""

    def __init__(self, resource: Resource, readers: list[MetricReader]) -> None:
        views = [
            View(
                instrument_name=spec.name,
                aggregation=ExplicitBucketHistogramAggregation(spec.buckets),
            )
            for spec in SPECS.values()
            if spec.buckets is not None
        ]
        self.provider = MeterProvider(resource=resource, metric_readers=readers, views=views)
        meter = self.provider.get_meter("llm-gateway", __version__)
        self._instruments: dict[str, Any] = {
            spec.name: meter.create_gauge(spec.name, spec.unit, spec.description)
            if spec.gauge
            else meter.create_counter(spec.name, spec.unit, spec.description)
            if spec.buckets is None
            else meter.create_histogram(spec.name, spec.unit, spec.description)
            for spec in SPECS.values()
        }

    def record(self, name: str, value: float, labels: dict[str, Any]) -> None:
        instrument = self._instruments[name]
        attributes = {k: v for k, v in labels.items() if v not in (None, "")}
        if SPECS[name].gauge:
            instrument.set(value, attributes)
        elif SPECS[name].buckets is None:
            instrument.add(value, attributes)
        else:
            instrument.record(value, attributes)

    def shutdown(self) -> None:
        self.provider.shutdown(timeout_millis=5_000)
