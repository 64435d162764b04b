"""OpenTelemetry: spans and metrics per the GenAI semantic conventions, exported over OTLP
(configured by the standard OTEL_* variables) and scraped at `/metrics`.

Spans are built when a request has finished (streams: when the stream has ended), from
the ids and times the request recorded along the way: the SERVER span continues the
client's `traceparent`, and each upstream attempt is a CLIENT span whose id the upstream
already received in its own `traceparent`. Spans (as plain records) and metric points
are built on a recorder thread; Prometheus metrics are recorded there, and for OTLP the
records and points go to a child process that runs the SDK's processors and exporters
(`export_process.py`), all through bounded queues, so a slow or dead collector never
touches a request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import orjson
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from opentelemetry.trace.status import StatusCode

from gateway.context import Attempt, RequestContext, new_span_id
from gateway.guardrails.chain import strongest, summarize
from gateway.telemetry import drain
from gateway.telemetry.export_process import (
    ExportProcess,
    SpanRecord,
    from_record,
    span_record,
)
from gateway.telemetry.metrics import OTelMetrics, Point, PrometheusMetrics, fold_counters
from gateway.telemetry.otlp import (
    SCOPE,
    gateway_resource,
    otlp_configured,
)
from gateway.telemetry.semconv import semconv_messages
from gateway.telemetry.stage_metrics import RoutingMetrics, cache_metrics, limit_metrics

log = logging.getLogger("gateway.telemetry")
RECORDER_QUEUE = 10_000
OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
PARAM_ATTRIBUTES = {
    "max_tokens": "gen_ai.request.max_tokens", "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k", "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty", "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}  # fmt: skip


# The SDK's own sampler objects (OTEL_TRACES_SAMPLER gives these very instances) whose
# decision is known without asking them: a root's, and for parentbased_* the parent's
# flag. Asking costs ~20 us a request before the upstream call (a context, a span, a
# SamplingResult); any other sampler is asked.
CONSTANT: dict[Sampler, bool] = {
    sampling.ALWAYS_ON: True, sampling.ALWAYS_OFF: False,
    sampling.DEFAULT_ON: True, sampling.DEFAULT_OFF: False,
}  # fmt: skip
FOLLOW_PARENT = (sampling.DEFAULT_ON, sampling.DEFAULT_OFF)


def ns(unix_seconds: float) -> int:
    return int(unix_seconds * 1_000_000_000)


class OTelSink:
    """A `TelemetrySink`: one SERVER span, CLIENT spans per attempt, GenAI metrics."""

    def __init__(self, span_exporter: SpanExporter | None = None,
                 metric_readers: tuple[MetricReader, ...] = ()) -> None:  # fmt: skip
        self.resource = gateway_resource()
        self.prometheus = PrometheusMetrics()
        self.registry = self.prometheus.registry
        readers = list(metric_readers)
        # OTLP configured by OTEL_*: spans and metric points go to a child process
        self.export_process: ExportProcess | None = None
        if span_exporter is None and otlp_configured():
            self.export_process = ExportProcess()
        self._points: list[Point] = []
        self._routing = RoutingMetrics(self._metric)
        self.otel_metrics = OTelMetrics(self.resource, readers) if readers else None
        self.backends: list[PrometheusMetrics | OTelMetrics] = [self.prometheus]
        if self.otel_metrics is not None:
            self.backends.append(self.otel_metrics)
        self.spans: BatchSpanProcessor | None = None
        if span_exporter is not None:  # its own drops: OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
            provider = self.otel_metrics.provider if self.otel_metrics else None
            self.spans = BatchSpanProcessor(
                span_exporter, max_queue_size=8192, meter_provider=provider
            )
        # OTEL_TRACES_SAMPLER(_ARG), parsed by the SDK (default: parentbased_always_on)
        self.sampler: Sampler | None = None
        if self.spans is not None or self.export_process is not None:
            self.sampler = TracerProvider(shutdown_on_exit=False).sampler
        self.dropped = 0
        # bounded by hand: SimpleQueue.put is C (~0.2 us), Queue.put_nowait Python (~2 us)
        self._queue: queue.SimpleQueue[RequestContext | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="otel-recorder", daemon=True)
        self._thread.start()

    def sample(self, ctx: RequestContext) -> None:
        """Whether this request's trace is recorded, decided as it starts so that the
        upstream's `traceparent` carries the decision (its sampled flag). Metrics count
        every request either way."""
        sampler = self.sampler
        assert sampler is not None
        if sampler in FOLLOW_PARENT and ctx.parent_span_id is not None:
            return  # parentbased_*: a client's sampled flag stands as it came
        sampled = CONSTANT.get(sampler)
        if sampled is None:
            sampled = self._decide(sampler, ctx)
        flags = int(ctx.trace_flags, 16)
        ctx.trace_flags = f"{flags | 1 if sampled else flags & ~1:02x}"

    def _decide(self, sampler: Sampler, ctx: RequestContext) -> bool:
        parent = None
        if ctx.parent_span_id is not None:
            remote = NonRecordingSpan(self._context(ctx, ctx.parent_span_id, remote=True))
            parent = set_span_in_context(remote)
        decision = sampler.should_sample(parent, int(ctx.trace_id, 16), ctx.path).decision
        return decision is Decision.RECORD_AND_SAMPLE

    def record(self, ctx: RequestContext) -> None:
        """Hand the finished request to the recorder thread (building spans and recording
        metrics costs far more, which the event loop never pays)."""
        if self._queue.qsize() >= RECORDER_QUEUE:  # the recorder is behind: drop and count
            self.dropped += 1
            self._metric("gateway.telemetry.dropped", 1, {})
            return
        self._queue.put(ctx)

    def connection_fault(self, what: str) -> None:
        """A connection the server protocol refused or cut: counted in Prometheus."""
        self.prometheus.record("gateway.connection.faults", 1, {"gateway.fault": what})

    def probe(self, path: str, status: int) -> None:
        """A health probe or scrape: counted in Prometheus alone (no span, no row)."""
        labels = {"url.path": path, "http.response.status_code": status}
        self.prometheus.record("gateway.probes", 1, labels)

    def _metric(self, name: str, value: float, labels: dict[str, Any]) -> None:
        for backend in self.backends:
            backend.record(name, value, labels)
        if self.export_process is not None:
            self._points.append((name, value, labels))

    def _run(self) -> None:
        running = True
        while running:
            spans: list[SpanRecord] = []
            for ctx in drain(self._queue):
                if ctx is None:
                    running = False
                    continue
                try:
                    self._record(ctx, spans)
                except Exception:  # telemetry never raises, nor stops recording
                    log.exception("could not record OpenTelemetry data")
            self._routing.flush()
            self._export(spans)

    def _export(self, spans: list[SpanRecord]) -> None:
        if self.export_process is not None:
            points, self._points = self._points, []
            dropped = self.export_process.dropped
            self.export_process.send(spans, fold_counters(points))
            if self.export_process.dropped > dropped:
                self._metric("gateway.telemetry.dropped", self.export_process.dropped - dropped, {})
        elif self.spans is not None:
            for record in spans:
                self.spans.on_end(from_record(record, self.resource, SCOPE))

    def _record(self, ctx: RequestContext, spans: list[SpanRecord]) -> None:
        """Metrics for one request; its spans (if sampled) appended to `spans`."""
        end = ctx.started_unix + ctx.latency_s
        common = self._genai_attributes(ctx)
        verdicts = summarize(ctx.verdicts)
        if self.sampler is not None and int(ctx.trace_flags, 16) & 1:
            spans.append(self._server_span(ctx, end))
            spans += [self._guardrail_span(ctx, verdict) for verdict in verdicts]
            for i, attempt in enumerate(ctx.attempts):
                last = i == len(ctx.attempts) - 1
                spans.append(self._client_span(ctx, attempt, common, end if last else None))
        labels = {"http.response.status_code": ctx.status, "gen_ai.request.model": ctx.model_label,
                  "gen_ai.provider.name": common.get("gen_ai.provider.name", ""),
                  "gateway.key_id": ctx.key_id or ""}  # fmt: skip
        self._metric("gateway.requests", 1, labels)
        for verdict in verdicts:
            labels = {
                "gateway.guardrail": verdict["guardrail"],
                "gateway.guardrail.action": verdict["action"],
            }
            self._metric("gateway.guardrail.actions", 1, labels)
        if ctx.operation is None:
            return  # not an API call: no GenAI metrics
        self._routing.record(ctx)
        limit_metrics(ctx, self._metric)
        if ctx.cache_status:
            cache_metrics(ctx, self._metric)
        genai = {k: v for k, v in common.items() if k in METRIC_LABELS}
        if "gen_ai.request.model" in genai:  # a client's model name, bounded as a label
            genai["gen_ai.request.model"] = ctx.upstream_model or ctx.model_label
        if ctx.error_type:
            genai["error.type"] = ctx.error_type
        self._metric("gen_ai.client.operation.duration", ctx.latency_s, genai)
        if ctx.stream and ctx.first_chunk_at is not None and ctx.attempts:
            self._metric(
                "gen_ai.client.operation.time_to_first_chunk",
                ctx.first_chunk_at - ctx.started,
                genai,
            )
        if ctx.tokens is not None:
            for kind, value in (("input", ctx.tokens.input), ("output", ctx.tokens.output)):
                self._metric(
                    "gen_ai.client.token.usage", value, {**genai, "gen_ai.token.type": kind}
                )
        if ctx.cost is not None:
            version = f"{ctx.prompt_name}@{ctx.prompt_version}" if ctx.prompt_name else ""
            spent = {**genai, "gateway.key_id": ctx.key_id or "", "gateway.prompt_version": version}
            self._metric("gateway.cost", float(ctx.cost.total), spent)

    def _genai_attributes(self, ctx: RequestContext) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": OPERATIONS.get(ctx.operation or "", "chat")
        }
        if ctx.attempts:
            attrs["gen_ai.provider.name"] = ctx.attempts[-1].system
        if ctx.upstream_model or ctx.model:
            attrs["gen_ai.request.model"] = ctx.upstream_model or ctx.model
        if ctx.response_model:
            attrs["gen_ai.response.model"] = ctx.response_model
        return attrs

    def _server_span(self, ctx: RequestContext, end: float) -> SpanRecord:
        attrs: dict[str, Any] = {
            "http.request.method": ctx.method, "url.path": ctx.path,
            "http.response.status_code": ctx.status, "gateway.request_id": ctx.request_id,
        }  # fmt: skip
        if ctx.model:
            attrs["gateway.model"] = ctx.model
        if ctx.cache_status:
            attrs["gateway.cache.status"] = ctx.cache_status
        if ctx.cache_age_s is not None:
            attrs["gateway.cache.age_s"] = round(ctx.cache_age_s, 3)
        if ctx.verdicts:
            attrs["gateway.guardrail.action"] = strongest(ctx.verdicts) or "pass"
        if ctx.key_id:
            attrs["gateway.key_id"] = ctx.key_id
        if ctx.prompt_name:
            attrs["gateway.prompt.name"] = ctx.prompt_name
            attrs["gateway.prompt.version"] = ctx.prompt_version
            if ctx.experiment:
                attrs["gateway.experiment"], attrs["gateway.experiment.arm"] = (
                    ctx.experiment,
                    ctx.arm,
                )
        if ctx.error_type:
            attrs["error.type"] = ctx.error_type
        status = StatusCode.ERROR if ctx.status >= 500 else StatusCode.UNSET
        return self._span(f"{ctx.method} {ctx.path}", SpanKind.SERVER, ctx, ctx.span_id,
                          ctx.parent_span_id, status, ctx.started_unix, end, attrs)  # fmt: skip

    @staticmethod
    def _span(name: str, kind: SpanKind, ctx: RequestContext, span_id: str,
              parent: str | None, status: StatusCode, start: float, end: float,
              attrs: dict[str, Any]) -> SpanRecord:  # fmt: skip
        """A span of this request's trace (the SERVER span's parent is the client's, remote)."""
        remote = parent is not None and parent == ctx.parent_span_id
        return span_record(name, kind, ctx.trace_id, span_id, parent, remote, ctx.trace_flags,
                           ctx.tracestate, status, ns(start), ns(end), attrs)  # fmt: skip

    def _client_span(self, ctx: RequestContext, attempt: Attempt, common: dict[str, Any],
                     stream_end: float | None) -> SpanRecord:  # fmt: skip
        attrs = dict(common)
        attrs["gen_ai.provider.name"] = attempt.system
        attrs["gen_ai.request.model"] = attempt.upstream_model
        for key, value in ctx.params.items():
            if key in PARAM_ATTRIBUTES and isinstance(value, int | float):
                attrs[PARAM_ATTRIBUTES[key]] = value
        if isinstance(ctx.params.get("stop"), str | list):
            stop = ctx.params["stop"]
            attrs["gen_ai.request.stop_sequences"] = (
                [stop] if isinstance(stop, str) else [str(s) for s in stop]
            )
        attrs["gen_ai.request.stream"] = ctx.stream
        if attempt.server_address:
            attrs["server.address"] = attempt.server_address
        if attempt.server_port:
            attrs["server.port"] = attempt.server_port
        end = attempt.started_unix + attempt.latency_s
        status = StatusCode.UNSET
        if attempt.error is not None:
            attrs["error.type"] = attempt.error
            status = StatusCode.ERROR
        elif stream_end is not None:  # the attempt that served the response
            self._response_attributes(ctx, attrs)
            if ctx.stream:
                end = stream_end  # a streaming span ends when its stream ends
                if ctx.first_chunk_at is not None:
                    attrs["gen_ai.response.time_to_first_chunk"] = ctx.first_chunk_at - ctx.started
            if ctx.error_type:
                attrs["error.type"] = ctx.error_type
                status = StatusCode.ERROR
        name = f"{attrs['gen_ai.operation.name']} {attempt.upstream_model}"
        # a model run inside the gateway (no server address) is an INTERNAL span
        kind = SpanKind.CLIENT if attempt.server_address else SpanKind.INTERNAL
        return self._span(name, kind, ctx, attempt.span_id, ctx.span_id, status,
                          attempt.started_unix, end, attrs)  # fmt: skip

    def _guardrail_span(self, ctx: RequestContext, verdict: dict[str, Any]) -> SpanRecord:
        attrs = {
            "gen_ai.operation.name": "apply_guardrail",
            "gateway.guardrail.name": verdict["guardrail"],
            "gateway.guardrail.stage": verdict["stage"],
            "gateway.guardrail.action": verdict["action"],
            "gateway.guardrail.entities": [
                f"{k}:{n}" for k, n in sorted(verdict["entities"].items())
            ],
        }
        start = verdict["start"] or ctx.started_unix
        status = StatusCode.ERROR if verdict["action"] == "error" else StatusCode.UNSET
        return self._span(f"apply_guardrail {verdict['guardrail']}", SpanKind.INTERNAL, ctx,
                          new_span_id(), ctx.span_id, status, start,
                          start + verdict["ms"] / 1000, attrs)  # fmt: skip

    @staticmethod
    def _response_attributes(ctx: RequestContext, attrs: dict[str, Any]) -> None:
        if ctx.response_id:
            attrs["gen_ai.response.id"] = ctx.response_id
        if ctx.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = list(ctx.finish_reasons)
        if ctx.tokens is not None:
            attrs["gen_ai.usage.input_tokens"] = ctx.tokens.input
            attrs["gen_ai.usage.output_tokens"] = ctx.tokens.output
            attrs["gen_ai.usage.cache_read.input_tokens"] = ctx.tokens.cached_input
            attrs["gen_ai.usage.reasoning.output_tokens"] = ctx.tokens.reasoning
            attrs["gateway.usage.estimated"] = ctx.tokens_estimated
        if ctx.cost is not None:
            attrs["gen_ai.usage.cost"] = float(ctx.cost.total)
        if ctx.captured_input is not None:  # the policy opted in to content capture
            attrs["gen_ai.input.messages"] = semconv_messages(ctx.captured_input)
        if ctx.captured_output is not None:
            output = [
                {"role": "assistant", "parts": [{"type": "text", "content": ctx.captured_output}]}
            ]
            attrs["gen_ai.output.messages"] = orjson.dumps(output).decode()

    def _context(self, ctx: RequestContext, span_id: str, remote: bool = False) -> SpanContext:
        state = TraceState.from_header([ctx.tracestate]) if ctx.tracestate else None
        return SpanContext(int(ctx.trace_id, 16), int(span_id, 16), remote,
                           TraceFlags(int(ctx.trace_flags, 16)), state)  # fmt: skip

    async def aclose(self) -> None:
        """Flush spans and metrics (on a thread: a slow collector must not stall the loop)."""
        await asyncio.to_thread(self._queue.put, None)
        await asyncio.to_thread(self._thread.join)
        if self.spans is not None:
            await asyncio.to_thread(self.spans.shutdown)
        if self.export_process is not None:
            await asyncio.to_thread(self.export_process.shutdown)
        if self.otel_metrics is not None:
            await asyncio.to_thread(self.otel_metrics.shutdown)


METRIC_LABELS = {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                 "gen_ai.response.model"}  # fmt: skip
