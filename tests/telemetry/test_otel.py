"""Spans and metrics as an OTLP receiver and a Prometheus scrape see them."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from tests.conftest import GatewayServer, PolicyWriter
from tests.local.tiny import write_tiny_model
from tests.telemetry.otlp_receiver import GrpcReceiver, HttpReceiver, Received

CHAT = {
    "model": "gpt",
    "messages": [{"role": "user", "content": "Hi"}],
    "temperature": 0.2,
    "max_tokens": 50,
}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
INTERNAL, SERVER, CLIENT = 1, 2, 3  # OTLP span kinds


def wait_for(received: Received, spans: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(received.spans) < spans and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
    yield monkeypatch


def run_traffic(write_policy: PolicyWriter, mock: MockUpstream) -> None:
    models = {
        "gpt": ("mock", "up-gpt"),
        "flaky": ("mock", "up-flaky"),
        "claude": ("claude", "claude-up"),
    }
    path = write_policy(models, fallbacks={"flaky": ["claude"]})
    mock.behave("up-flaky", Behavior(status=503))
    mock.behave("up-gpt", Behavior(chunk_interval_s=0.05))
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url) as c,
    ):
        traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        assert (
            c.post(
                "/v1/chat/completions",
                json={**CHAT, "stream": True},
                headers={"traceparent": traceparent, "x-request-id": "s1"},
            ).status_code
            == 200
        )
        assert (
            c.post(
                "/v1/chat/completions",
                json={**CHAT, "model": "flaky"},
                headers={"x-request-id": "f1"},
            ).status_code
            == 200
        )
        assert c.post("/v1/chat/completions", json={**CHAT, "model": "nope"}).status_code == 404


def check(received: Received, mock: MockUpstream) -> None:
    wait_for(received, 6)
    by_request = {
        s.attributes.get("gateway.request_id"): s for s in received.spans if s.kind == SERVER
    }
    server = by_request["s1"]
    assert server.name == "POST /v1/chat/completions"
    assert (server.trace_id, server.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert server.attributes["http.response.status_code"] == 200
    client = next(
        s for s in received.spans if s.kind == CLIENT and s.parent_span_id == server.span_id
    )
    assert client.name == "chat up-gpt"
    assert client.trace_id == CLIENT_TRACE
    # the upstream saw this very span as its parent
    assert mock.requests[0].headers["traceparent"] == f"00-{CLIENT_TRACE}-{client.span_id}-01"
    a = client.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "up-gpt" and a["gen_ai.response.model"] == "up-gpt"
    assert a["gen_ai.response.id"] == "chatcmpl-mock" and a["gen_ai.response.finish_reasons"] == [
        "stop"
    ]
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (9, 8)
    assert (a["gen_ai.request.temperature"], a["gen_ai.request.max_tokens"]) == (0.2, 50)
    assert a["gen_ai.request.stream"] is True
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == int(
        mock.base_url.rsplit(":", 1)[1]
    )
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    # a streaming span ends when its stream ends (10 chunks, 50 ms apart)
    assert client.end_ns - client.start_ns > 300_000_000
    assert "gen_ai.input.messages" not in a  # no content unless a policy opts in

    fallback = by_request["f1"]
    attempts = sorted(
        (s for s in received.spans if s.parent_span_id == fallback.span_id),
        key=lambda s: s.start_ns,
    )
    assert [s.name for s in attempts] == ["chat up-flaky", "chat claude-up"]
    assert attempts[0].attributes["error.type"] == "503"
    assert attempts[0].status_code == 2 and "error.type" not in attempts[1].attributes
    assert attempts[1].attributes["gen_ai.provider.name"] == "anthropic"

    deadline = time.monotonic() + 10
    while (
        "gen_ai.client.operation.time_to_first_chunk" not in received.metrics
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert received.bounds["gen_ai.client.token.usage"][:3] == [1, 4, 16]
    assert received.bounds["gen_ai.client.operation.duration"][:3] == [0.01, 0.02, 0.04]
    token_types = {
        kv.value.string_value
        for p in received.metrics["gen_ai.client.token.usage"]
        for kv in p.attributes
        if kv.key == "gen_ai.token.type"
    }
    assert token_types == {"input", "output"}
    assert "gateway.requests" in received.metrics


def test_otlp_http_protobuf(
    otel_env: pytest.MonkeyPatch, write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    with HttpReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        run_traffic(write_policy, mock)
        check(receiver.received, mock)


def test_otlp_grpc(
    otel_env: pytest.MonkeyPatch, write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    with GrpcReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        otel_env.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        run_traffic(write_policy, mock)
        check(receiver.received, mock)


def test_trace_sampling_follows_the_client_and_otel_traces_sampler(
    otel_env: pytest.MonkeyPatch, write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    """The default sampler (parentbased_always_on) keeps a client's 'not sampled'; a ratio
    of 0 samples nothing. Unsampled requests export no spans, carry flags 00 upstream, and
    are still counted in the metrics."""

    def traffic(sampler: str | None) -> tuple[Received, list[str]]:
        if sampler is not None:
            otel_env.setenv("OTEL_TRACES_SAMPLER", sampler)
            otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
        mock.reset_state()
        with HttpReceiver() as receiver:
            otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
            with (
                GatewayServer(Settings(policy_path=str(write_policy()), watch_policy=False)) as gw,
                httpx.Client(base_url=gw.base_url) as c,
            ):
                unsampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
                for headers in ({"traceparent": unsampled, "x-request-id": "u1"},
                                {"x-request-id": "n1"}):  # fmt: skip
                    assert c.post("/v1/chat/completions", json=CHAT, headers=headers).is_success
            wait_for(receiver.received, 2, timeout=2.0)
            flags = [r.headers["traceparent"].rsplit("-", 1)[1] for r in mock.requests]
            return receiver.received, flags

    received, flags = traffic(None)
    ids = {s.attributes.get("gateway.request_id") for s in received.spans if s.kind == SERVER}
    assert ids == {"n1"} and flags == ["00", "01"]
    received, flags = traffic("traceidratio")
    assert received.spans == [] and flags == ["00", "00"]
    assert "gateway.requests" in received.metrics  # counted all the same


def test_dead_collector_changes_nothing_for_requests(
    otel_env: pytest.MonkeyPatch, write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    from benchmarks.mock_upstream import free_port

    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    otel_env.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    started = time.monotonic()
    with (
        GatewayServer(Settings(policy_path=str(write_policy()), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url) as c,
    ):
        for _ in range(20):
            assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert time.monotonic() - started < 15  # shutdown flush gives up on a dead collector


def test_prometheus_scrape(
    gateway: GatewayServer, client: httpx.Client, mock: MockUpstream
) -> None:
    client.post("/v1/chat/completions", json=CHAT)
    deadline = time.monotonic() + 5  # recorded off the event loop, just after the response
    while 'gen_ai_token_type="input"' not in (text := client.get("/metrics").text):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "gen_ai_client_token_usage" in text
    assert 'gen_ai_token_type="input"' in text
    assert "gen_ai_client_operation_duration_seconds_bucket" in text
    assert "gateway_requests_total" in text


async def test_a_full_recorder_queue_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.telemetry.otel as otel
    from gateway.context import RequestContext

    monkeypatch.setattr(otel, "RECORDER_QUEUE", 2)
    sink = otel.OTelSink()
    monkeypatch.setattr(sink, "_record", lambda ctx, spans: time.sleep(0.05))
    started = time.perf_counter()
    for i in range(50):
        sink.record(RequestContext(f"r{i}", "POST", "/v1/chat/completions"))
    assert time.perf_counter() - started < 0.05  # never waits for the recorder
    assert sink.dropped >= 45
    await sink.aclose()


def test_guardrail_verdicts_are_spans(
    otel_env: pytest.MonkeyPatch, write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
    path = write_policy(
        {"gpt": ("mock", "up-gpt")},
        extra="guardrails:\n  secrets: {type: secrets, action: redact}\n",
        guardrails={"gpt": "{input: [secrets]}"},
    )
    with HttpReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        with (
            GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
            httpx.Client(base_url=gw.base_url) as c,
        ):
            c.post(
                "/v1/chat/completions",
                json={"model": "gpt", "messages": [{"role": "user", "content": f"key {key}"}]},
            )
        wait_for(receiver.received, 3)
    server = next(s for s in receiver.received.spans if s.kind == SERVER)
    guard = next(s for s in receiver.received.spans if s.name == "apply_guardrail secrets")
    assert guard.kind == 1 and guard.parent_span_id == server.span_id  # INTERNAL, under the request
    assert guard.attributes["gateway.guardrail.action"] == "redact"
    assert guard.attributes["gateway.guardrail.entities"] == ["OPENAI_API_KEY:1"]
    assert server.start_ns <= guard.start_ns <= guard.end_ns <= server.end_ns
    assert key not in str([s.attributes for s in receiver.received.spans])


def test_a_local_model_call_is_an_internal_span_with_usage(
    otel_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_tiny_model(tmp_path / "model", seed=2)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nproviders:\n  tiny: {type: onnx, model: %s, threads: 1}\n"
        "models:\n  tiny: {provider: tiny, upstream_model: tiny-up}\n" % (tmp_path / "model")
    )
    with HttpReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        with (
            GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as gw,
            httpx.Client(base_url=gw.base_url) as c,
        ):
            body = {**CHAT, "model": "tiny", "max_tokens": 4}
            assert c.post("/v1/chat/completions", json=body).status_code == 200
        wait_for(receiver.received, 2)
    local = next(s for s in receiver.received.spans if s.name == "chat tiny-up")
    assert local.kind == INTERNAL
    a = local.attributes
    assert a["gen_ai.provider.name"] == "onnx" and "server.address" not in a
    assert a["gen_ai.usage.output_tokens"] == 4


def test_the_resource_hashes_once_and_compares_like_the_sdks() -> None:
    from opentelemetry.sdk.resources import Resource

    from gateway.telemetry.otlp import HashedResource

    attributes = {"service.name": "llm-gateway", "service.version": "1"}
    ours, sdk = HashedResource(attributes, "s"), Resource(attributes, "s")
    assert hash(ours) == hash(sdk) and ours == sdk and sdk == ours
    assert ours != HashedResource({**attributes, "service.version": "2"}, "s")
