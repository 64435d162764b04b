"""Failover over real sockets: streams that never start, streams cut after they started,
typed fallbacks on each provider's real error bodies, and the retry budget."""

from __future__ import annotations

from typing import Any

import duckdb
import httpx
import orjson

from benchmarks.mock_upstream import Behavior
from gateway.app import Settings
from tests.conftest import GatewayServer
from tests.routing.conftest import Mocks, calls, providers

CHAT = {"messages": [{"role": "user", "content": "Hi"}]}
OPENAI_CONTEXT = {"error": {"message": "This model's maximum context length is 8192 tokens. "
                            "However, your messages resulted in 9000 tokens.",
                            "type": "invalid_request_error", "param": "messages",
                            "code": "context_length_exceeded"}}  # fmt: skip
AZURE_FILTER = {"error": {"message": "The response was filtered due to the prompt triggering "
                          "Azure OpenAI's content management policy.", "type": None,
                          "param": "prompt", "code": "content_filter", "status": 400,
                          "innererror": {"code": "ResponsibleAIPolicyViolation",
                                         "content_filter_result": {"hate": {
                                             "filtered": True, "severity": "high"}}}}}  # fmt: skip
ANTHROPIC_TOO_LONG = {"type": "error", "error": {"type": "invalid_request_error",
                      "message": "prompt is too long: 210000 tokens > 200000 maximum"}}  # fmt: skip


def events(text: str) -> list[Any]:
    return [orjson.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]


def test_a_stream_silent_past_first_chunk_s_fails_over_cleanly(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    strategy: ordered
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
    retry: {attempts: 1, backoff_s: 0}
    timeouts: {first_chunk_s: 0.3}
"""
    mocks["a"].behave("x", Behavior(pause_at=0, pause_s=3))  # headers, then silence
    with serve(models) as (_, client):
        r = client.post("/v1/chat/completions", json={"model": "m", **CHAT, "stream": True})
    assert r.status_code == 200
    chunks = events(r.text)
    assert not any("error" in c for c in chunks)
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("role")) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello! How can I help you today?" and r.text.endswith("data: [DONE]\n\n")
    assert calls(mocks) == {"a": 1, "b": 1, "c": 0}
    assert r.headers.get("x-gateway-attempts") is None  # a success


def test_a_stream_cut_after_its_first_content_ends_with_the_error_event(
    serve: Any, mocks: Mocks
) -> None:
    models = """\
  m:
    strategy: ordered
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
    retry: {attempts: 2, backoff_s: 0}
    timeouts: {between_chunks_s: 0.3}
    fallbacks: [other]
  other: {provider: c, upstream_model: y}
"""
    mocks["a"].behave("x", Behavior(pause_at=3, pause_s=3))  # two content chunks, then silence
    with serve(models) as (_, client):
        r = client.post("/v1/chat/completions", json={"model": "m", **CHAT, "stream": True})
    chunks = events(r.text)
    assert chunks[1]["choices"][0]["delta"]["content"] == "Hello!"
    assert chunks[-1]["error"]["code"] == "upstream_timeout"
    assert (
        "finish_reason" not in str(chunks[-2]) or chunks[-2]["choices"][0]["finish_reason"] is None
    )
    assert calls(mocks) == {"a": 1, "b": 0, "c": 0}  # never retried once content went out


def test_context_window_fallbacks_on_each_providers_error(serve: Any, mocks: Mocks) -> None:
    models = """\
  openai-small:
    provider: a
    upstream_model: small
    fallbacks: [{model: big, on: [context_window]}]
  azure-small:
    provider: azure
    upstream_model: small
    fallbacks: [{model: big, on: [context_window]}]
  claude-small:
    provider: claude
    upstream_model: small
    fallbacks: [{model: big, on: [context_window]}]
  counted:
    targets: [{provider: a, upstream_model: tiny, context_length: 5}]
    fallbacks: [{model: big, on: [context_window]}]
  big: {provider: b, upstream_model: large}
"""
    mocks["a"].behave("small", Behavior(status=400, error=OPENAI_CONTEXT))
    mocks["b"].behave("small", Behavior(status=400, error=OPENAI_CONTEXT))  # azure's deployment
    mocks["c"].behave("small", Behavior(status=400, error=ANTHROPIC_TOO_LONG))
    with serve(models) as (_, client):
        for model in ("openai-small", "azure-small", "claude-small"):
            r = client.post("/v1/chat/completions", json={"model": model, **CHAT})
            assert r.status_code == 200, (model, r.text)
            assert r.json()["model"] == "large"
        long = {"messages": [{"role": "user", "content": "word " * 50}]}
        before = calls(mocks)["a"]
        r = client.post("/v1/chat/completions", json={"model": "counted", **long})
        assert r.status_code == 200 and r.json()["model"] == "large"
        assert calls(mocks)["a"] == before  # skipped before calling it (the gateway's count)


def test_content_policy_fallbacks(serve: Any, mocks: Mocks) -> None:
    models = """\
  azure-strict:
    provider: azure
    upstream_model: strict
    fallbacks: [{model: local, on: [content_policy]}]
  claude-refuses:
    provider: claude
    upstream_model: shy
    fallbacks: [{model: local, on: [content_policy]}]
  openai-filtered:
    provider: a
    upstream_model: filtered
    fallbacks: [{model: local, on: [content_policy]}]
  local: {provider: a, upstream_model: lenient}
"""
    mocks["b"].behave("strict", Behavior(status=400, error=AZURE_FILTER))
    mocks["c"].behave("shy", Behavior(finish="refusal", text=""))
    mocks["a"].behave("filtered", Behavior(finish="content_filter", text=""))
    with serve(models) as (_, client):
        for model in ("azure-strict", "claude-refuses", "openai-filtered"):
            r = client.post("/v1/chat/completions", json={"model": model, **CHAT})
            assert r.status_code == 200 and r.json()["model"] == "lenient", (model, r.text)
        streamed = client.post("/v1/chat/completions",
                               json={"model": "openai-filtered", **CHAT, "stream": True})  # fmt: skip
        assert all(c.get("model") in ("lenient", None) for c in events(streamed.text))


def test_fallbacks_only_on_their_triggers(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    provider: a
    upstream_model: x
    fallbacks: [{model: other, on: [rate_limit]}]
  other: {provider: b, upstream_model: y}
"""
    mocks["a"].behave("x", Behavior(status=500))
    with serve(models) as (_, client):
        assert client.post("/v1/chat/completions", json={"model": "m", **CHAT}).status_code == 500
        mocks["a"].behave("x", Behavior(status=429))
        assert client.post("/v1/chat/completions", json={"model": "m", **CHAT}).status_code == 200
    assert calls(mocks)["b"] == 1


def test_the_retry_budget_caps_amplification(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
      - {provider: c, upstream_model: x}
    retry: {attempts: 3, backoff_s: 0, budget_ratio: 0.2, budget_min_per_s: 1}
    circuit_breaker: {min_requests: 1000}
"""
    for server in mocks.values():
        server.behave("x", Behavior(status=503))
    with serve(models) as (_, client):
        for _ in range(200):
            assert (
                client.post("/v1/chat/completions", json={"model": "m", **CHAT}).status_code == 503
            )
        metrics = client.get("/metrics").text
    upstream = sum(calls(mocks).values())
    # without a budget: 4 calls a request (800); with it: the requests, 20% more, 10 a window
    assert upstream <= 200 * 1.2 + 10 + 1, upstream
    assert "gateway_routing_retry_budget_exhausted_total" in metrics


def logged(tmp_path: Any, mocks: Mocks, models: str, body: dict[str, Any],
           *queries: str) -> list[list[Any]]:  # fmt: skip
    """One request through a gateway with a request log; then the queries' rows."""
    db = tmp_path / "log" / "requests.duckdb"
    policy = tmp_path / "p.yaml"
    telemetry = f"telemetry: {{duckdb: {db}, flush_interval_s: 0.1}}\n"
    policy.write_text("version: 1\n" + providers(mocks) + telemetry + "models:\n" + models)
    with GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as gw:
        r = httpx.post(gw.v1 + "/chat/completions", json=body)
        assert r.status_code == 200
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [con.execute(q).fetchall() for q in queries]
    finally:
        con.close()


def test_attempts_are_rows_with_their_reason_and_backoff(tmp_path: Any, mocks: Mocks) -> None:
    models = """\
  m:
    strategy: ordered
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
    retry: {attempts: 1, backoff_s: 0.05}
    fallbacks: [other]
  other: {provider: c, upstream_model: y}
"""
    mocks["a"].behave("x", Behavior(status=503))
    mocks["b"].behave("x", Behavior(status=502))
    attempts, request = logged(tmp_path, mocks, models, {"model": "m", **CHAT},
                               "SELECT attempt, provider, status, reason, backoff_ms, breaker "
                               "FROM attempts ORDER BY attempt",
                               "SELECT strategy, target, attempts FROM requests")  # fmt: skip
    assert [a[1:4] for a in attempts] == [("a", 503, "retry"), ("b", 502, "fallback"),
                                          ("c", 200, "ok")]  # fmt: skip
    assert attempts[0][4] == 0 and 0 <= attempts[1][4] <= 50 + 5
    assert request == [("ordered", "c/y", 3)]


def test_a_first_chunk_timeout_is_its_own_reason(tmp_path: Any, mocks: Mocks) -> None:
    models = """\
  m:
    strategy: ordered
    targets: [{provider: a, upstream_model: x}, {provider: b, upstream_model: x}]
    retry: {attempts: 1, backoff_s: 0}
    timeouts: {first_chunk_s: 0.3}
"""
    mocks["a"].behave("x", Behavior(pause_at=0, pause_s=3))
    (rows,) = logged(tmp_path, mocks, models, {"model": "m", **CHAT, "stream": True},
                     "SELECT provider, reason, error FROM attempts ORDER BY attempt")  # fmt: skip
    assert rows == [("a", "timeout_first_chunk", "timeout_first_chunk"), ("b", "ok", None)]
