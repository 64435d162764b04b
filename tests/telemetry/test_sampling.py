"""The sampling decision made as a request starts: the SDK's standard samplers are
answered without being asked, and must answer exactly as the SDK would."""

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.context import RequestContext
from gateway.telemetry.otel import OTelSink

PARENT = "00f067aa0ba902b7"
SAMPLERS = {
    "always_on": sampling.ALWAYS_ON,
    "always_off": sampling.ALWAYS_OFF,
    "parentbased_always_on": sampling.DEFAULT_ON,
    "parentbased_always_off": sampling.DEFAULT_OFF,
    "traceidratio_half": sampling.TraceIdRatioBased(0.5),
    "parentbased_traceidratio_half": sampling.ParentBased(sampling.TraceIdRatioBased(0.5)),
}


@pytest.fixture(scope="module")
def sink() -> Iterator[OTelSink]:
    sink = OTelSink(span_exporter=InMemorySpanExporter())
    yield sink
    asyncio.run(sink.aclose())


def request(trace_id: str, parent_flags: str | None) -> RequestContext:
    ctx = RequestContext("r", "POST", "/v1/chat/completions")
    ctx.trace_id = trace_id
    if parent_flags is not None:
        ctx.parent_span_id, ctx.trace_flags = PARENT, parent_flags
    return ctx


@pytest.mark.parametrize("name", SAMPLERS)
def test_the_decision_is_the_sdk_samplers_own(sink: OTelSink, name: str) -> None:
    sink.sampler = SAMPLERS[name]
    trace_ids = [f"{i * 0x0123456789ABCDEF0123456789ABCDE:032x}"[-32:] for i in range(1, 41)]
    seen = set()
    for trace_id in trace_ids:
        for parent_flags in (None, "00", "01"):
            ctx = request(trace_id, parent_flags)
            sink.sample(ctx)
            expected = sink._decide(SAMPLERS[name], request(trace_id, parent_flags))
            assert ctx.trace_flags == ("01" if expected else "00"), (trace_id, parent_flags)
            seen.add(expected)
    if "ratio" in name:
        assert seen == {True, False}  # the ids above fall on both sides of one half


def test_a_clients_sampled_flag_is_kept_by_the_default_sampler(sink: OTelSink) -> None:
    sink.sampler = sampling.DEFAULT_ON
    for flags in ("00", "01"):
        ctx = request("4bf92f3577b34da6a3ce929d0e0e4736", flags)
        sink.sample(ctx)
        assert ctx.trace_flags == flags
    root = request("4bf92f3577b34da6a3ce929d0e0e4736", None)
    root.trace_flags = "00"
    sink.sample(root)
    assert root.trace_flags == "01"
