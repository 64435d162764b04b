"""The exact cache end to end, through the official openai SDK over real sockets: a hit
is the miss's answer (content, tool calls, usage), streams replay chunk for chunk, tenants
never share, Cache-Control is honoured, entries expire and memory stays bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from gateway.auth import hash_key
from tests.cache.conftest import cache_policy
from tests.conftest import GatewayServer
from tests.faults.conftest import request_rows

CACHES = """\
  default: {type: exact, ttl_s: 60}
  everything: {type: exact, eligible: all}
  brief: {type: exact, ttl_s: 1}
  tiny: {type: exact, eligible: all, max_mb: 0.05}
  cut: {type: exact, store_truncated: true}
"""
MODELS: dict[str, tuple[str, str | None]] = {
    "gpt": ("up-gpt", "default"), "any": ("up-any", "everything"), "brief": ("up-brief", "brief"),
    "tiny": ("up-tiny", "tiny"), "cut": ("up-cut", "cut"), "plain": ("up-plain", None),
    "default-cut": ("up-dcut", "default"),
}  # fmt: skip
KEYS = {"team-a": "sk-gw-team-a", "team-b": "sk-gw-team-b", "team-a2": "sk-gw-team-a2"}
AUTH = "auth:\n  keys:\n" + "".join(
    f"    - {{id: {k}, sha256: {hash_key(v)}"
    + (", cache_namespace: team-a" if k == "team-a2" else "") + "}\n"
    for k, v in KEYS.items()
)  # fmt: skip
TELEMETRY = "telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.1\n"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("exact")
    path = tmp / "policy.yaml"
    db = tmp / "log" / "requests.duckdb"
    path.write_text(cache_policy(mock.base_url, CACHES, MODELS, AUTH + TELEMETRY.format(db=db)))
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as server:
        server.tmp = tmp  # type: ignore[attr-defined]
        yield server


def sdk(gw: GatewayServer, team: str = "team-a") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=KEYS[team], max_retries=0)


def http(gw: GatewayServer, team: str = "team-a") -> httpx.Client:
    return httpx.Client(base_url=gw.base_url, timeout=10,
                        headers={"authorization": f"Bearer {KEYS[team]}"})  # fmt: skip


def chat(client: httpx.Client, model: str = "gpt", headers: dict[str, str] | None = None,
         **body: object) -> httpx.Response:  # fmt: skip
    body = {"model": model, "messages": MESSAGES, "temperature": 0, **body}
    response = client.post("/v1/chat/completions", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    return response


def settle() -> None:
    time.sleep(0.15)  # the entry is written after the response, off the client's path


def unique(text: str) -> Any:  # the SDK's message type, or a JSON body's
    return [{"role": "user", "content": f"{text} {time.monotonic_ns()}"}]


def test_hit_is_the_miss_answer_and_skips_the_upstream(gw: GatewayServer,
                                                        mock: MockUpstream) -> None:  # fmt: skip
    mock.behave("up-gpt", Behavior(text="Paris.", usage={"prompt_tokens": 14,
                                                          "completion_tokens": 2}))  # fmt: skip
    messages = unique("capital")
    with sdk(gw) as client:
        miss = client.chat.completions.with_raw_response.create(
            model="gpt", messages=messages, temperature=0
        )
        settle()
        hit = client.chat.completions.with_raw_response.create(
            model="gpt", messages=messages, temperature=0
        )
    assert miss.headers["x-gateway-cache"] == "miss" and "age" not in miss.headers
    assert hit.headers["x-gateway-cache"] == "hit" and int(hit.headers["age"]) >= 0
    assert orjson.loads(hit.content) == orjson.loads(miss.content)
    parsed = hit.parse()
    assert parsed.choices[0].message.content == "Paris."
    assert parsed.usage is not None and parsed.usage.total_tokens == 16
    assert len(mock.requests) == 1


def test_tool_calls_come_back_identical(gw: GatewayServer, mock: MockUpstream) -> None:
    mock.behave("up-gpt", Behavior(tool_call={"name": "weather", "arguments": {"city": "Oslo"}}))
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
    messages = unique("weather")
    with http(gw) as client:
        miss = chat(client, messages=messages, tools=tools)
        settle()
        hit = chat(client, messages=messages, tools=tools)
        streamed = client.post("/v1/chat/completions", json={
            "model": "gpt", "messages": messages, "tools": tools, "temperature": 0,
            "stream": True}).text  # fmt: skip
    assert hit.headers["x-gateway-cache"] == "hit"
    assert hit.json() == miss.json()
    call = hit.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Oslo"}'}
    deltas = [orjson.loads(e[6:]) for e in streamed.split("\n\n") if e.startswith("data: {")]
    parts = [d["choices"][0]["delta"]["tool_calls"][0] for d in deltas
             if d["choices"] and d["choices"][0]["delta"].get("tool_calls")]  # fmt: skip
    assert parts[0]["function"]["arguments"] == '{"city":"Oslo"}' and parts[0]["id"] == "call_1"
    assert len(mock.requests) == 1


def events(text: str) -> list[bytes]:
    return [e.encode() for e in text.split("\n\n") if e]


def test_a_stream_replays_with_identical_deltas(gw: GatewayServer, mock: MockUpstream) -> None:
    mock.behave("up-gpt", Behavior(text="one two three four"))
    messages = unique("stream")
    with http(gw) as client:
        first = client.post("/v1/chat/completions", json={
            "model": "gpt", "messages": messages, "temperature": 0, "stream": True})  # fmt: skip
        settle()
        second = client.post("/v1/chat/completions", json={
            "model": "gpt", "messages": messages, "temperature": 0, "stream": True})  # fmt: skip
        usage = client.post("/v1/chat/completions", json={
            "model": "gpt", "messages": messages, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}})  # fmt: skip
        whole = chat(client, messages=messages)
    assert first.headers["x-gateway-cache"] == "miss"
    assert second.headers["x-gateway-cache"] == "hit"
    assert events(second.text) == events(first.text)  # same chunks, same boundaries
    assert b'"usage"' not in second.content  # the client did not ask for it
    usage_events = [e for e in events(usage.text) if b'"usage":{' in e]
    assert len(usage_events) == 1 and usage.headers["x-gateway-cache"] == "hit"
    assert whole.headers["x-gateway-cache"] == "hit"  # a streamed entry, assembled
    message = whole.json()["choices"][0]
    assert message["message"]["content"] == "one two three four"
    assert message["finish_reason"] == "stop"
    assert whole.json()["usage"]["completion_tokens"] == 8
    assert len(mock.requests) == 1


def test_openai_sdk_stream_from_a_whole_entry(gw: GatewayServer, mock: MockUpstream) -> None:
    messages = unique("split")
    with sdk(gw) as client:
        client.chat.completions.create(model="gpt", messages=messages,
                                       temperature=0)  # fmt: skip
        settle()
        stream = client.chat.completions.create(
            model="gpt", messages=messages, temperature=0, stream=True,
            stream_options={"include_usage": True})  # fmt: skip
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help you today?"
    assert [c.usage is not None for c in chunks].count(True) == 1
    assert len(mock.requests) == 1


def test_sampling_without_a_seed_is_not_cached(gw: GatewayServer, mock: MockUpstream) -> None:
    messages = unique("sample")
    with http(gw) as client:
        assert (
            chat(client, messages=messages, temperature=0.7).headers["x-gateway-cache"] == "bypass"
        )
        assert (
            chat(client, messages=messages, temperature=0.7).headers["x-gateway-cache"] == "bypass"
        )
        default = {"model": "gpt", "messages": messages}  # temperature omitted: OpenAI's 1
        assert (
            client.post("/v1/chat/completions", json=default).headers["x-gateway-cache"] == "bypass"
        )
        chat(client, messages=messages, temperature=0.7, seed=7)
        settle()
        assert (
            chat(client, messages=messages, temperature=0.7, seed=7).headers["x-gateway-cache"]
            == "hit"
        )
        chat(client, "any", messages=messages, temperature=0.7)
        settle()
        assert (
            chat(client, "any", messages=messages, temperature=0.7).headers["x-gateway-cache"]
            == "hit"
        )
        assert "x-gateway-cache" not in chat(client, "plain", messages=messages).headers
    assert len(mock.requests) == 6


def test_tenants_never_share_unless_their_keys_say_so(gw: GatewayServer,
                                                      mock: MockUpstream) -> None:  # fmt: skip
    messages = unique("tenants")
    with http(gw, "team-a") as a, http(gw, "team-b") as b, http(gw, "team-a2") as a2:
        chat(a, messages=messages)
        settle()
        assert chat(b, messages=messages).headers["x-gateway-cache"] == "miss"
        assert chat(a2, messages=messages).headers["x-gateway-cache"] == "hit"  # same namespace
        assert chat(a, messages=messages).headers["x-gateway-cache"] == "hit"
    assert len(mock.requests) == 2


def test_cache_control_directives(gw: GatewayServer, mock: MockUpstream) -> None:
    messages = unique("directives")
    with http(gw) as client:
        chat(client, messages=messages, headers={"cache-control": "no-store"})
        settle()
        assert chat(client, messages=messages).headers["x-gateway-cache"] == "miss"  # not stored
        settle()
        assert chat(client, messages=messages).headers["x-gateway-cache"] == "hit"
        mock.behave("up-gpt", Behavior(text="fresh"))
        refreshed = chat(client, messages=messages, headers={"cache-control": "no-cache"})
        assert refreshed.headers["x-gateway-cache"] == "refresh"
        settle()
        after = chat(client, messages=messages)
        assert after.headers["x-gateway-cache"] == "hit"
        assert after.json()["choices"][0]["message"]["content"] == "fresh"  # the entry rewritten
        both = chat(client, messages=messages, headers={"cache-control": "no-cache, no-store"})
        assert both.headers["x-gateway-cache"] == "bypass"
        time.sleep(1.1)
        old = chat(client, messages=messages, headers={"cache-control": "max-age=1"})
        assert old.headers["x-gateway-cache"] == "miss"  # older than a second: not accepted
        young = chat(client, messages=messages, headers={"cache-control": "max-age=60"})
        assert young.headers["x-gateway-cache"] == "hit"
    assert len(mock.requests) == 5


def test_ttl_expiry(gw: GatewayServer, mock: MockUpstream) -> None:
    messages = unique("ttl")
    with http(gw) as client:
        chat(client, "brief", messages=messages)
        settle()
        assert chat(client, "brief", messages=messages).headers["x-gateway-cache"] == "hit"
        time.sleep(1.1)
        assert chat(client, "brief", messages=messages).headers["x-gateway-cache"] == "miss"
    assert len(mock.requests) == 2


def test_what_is_not_stored(gw: GatewayServer, mock: MockUpstream) -> None:
    messages = unique("not stored")
    with http(gw) as client:
        mock.behave("up-gpt", Behavior(status=500, error={"error": {"message": "boom"}}))
        assert client.post("/v1/chat/completions", json={
            "model": "gpt", "messages": messages, "temperature": 0}).status_code == 500  # fmt: skip
        mock.behave("up-gpt", Behavior(cut_after=2))  # a stream that ends with an error event
        client.post("/v1/chat/completions", json={
            "model": "gpt", "messages": messages, "temperature": 0, "stream": True})  # fmt: skip
        settle()
        mock.behaviors.clear()
        assert chat(client, messages=messages).headers["x-gateway-cache"] == "miss"
    assert len(mock.requests) == 3


def test_truncated_answers_only_when_the_policy_says(gw: GatewayServer, mock: MockUpstream,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import benchmarks.mock_upstream as upstream

    original = upstream.openai_completion

    def truncated(model: str, b: Behavior) -> dict[str, object]:
        doc = original(model, b)
        doc["choices"][0]["finish_reason"] = "length"
        return doc

    monkeypatch.setattr(upstream, "openai_completion", truncated)
    messages = unique("length")
    with http(gw) as client:
        chat(client, "default-cut", messages=messages, max_tokens=3)
        chat(client, "cut", messages=messages, max_tokens=3)
        settle()
        assert chat(client, "default-cut", messages=messages, max_tokens=3).headers[
            "x-gateway-cache"] == "miss"  # fmt: skip
        assert chat(client, "cut", messages=messages, max_tokens=3).headers[
            "x-gateway-cache"] == "hit"  # fmt: skip


def test_memory_stays_within_max_mb(gw: GatewayServer, mock: MockUpstream) -> None:
    mock.behave("up-tiny", Behavior(text="x" * 2000))
    with http(gw) as client:
        first = unique("tiny first")
        chat(client, "tiny", messages=first)
        for i in range(60):  # ~2.3 kB entries into 50 kB
            chat(client, "tiny", messages=unique(f"tiny {i}"))
        settle()
        assert chat(client, "tiny", messages=first).headers["x-gateway-cache"] == "miss"
        stats = client.get("/admin/cache/stats").json()
    tiny = next(c for c in stats["caches"] if c["name"] == "tiny")
    assert 0 < tiny["bytes"] <= 0.05 * 1024 * 1024
    assert tiny["entries"] < 60


def test_the_request_log_has_status_age_and_savings(gw: GatewayServer, mock: MockUpstream,
                                                    tmp_path: Path) -> None:  # fmt: skip
    messages = unique("telemetry")
    mock.behave("up-gpt", Behavior(usage={"prompt_tokens": 1000, "completion_tokens": 1000}))
    with http(gw) as client:
        chat(client, messages=messages, metadata={"case": "telemetry-miss"})
        settle()
        chat(client, messages=messages, metadata={"case": "telemetry-hit"})
    time.sleep(0.5)  # the sink flushes every 0.1 s
    rows: list[Any] = request_rows(gw.tmp, "tags, cache_status, cache_age_s, cost_usd, saved_usd, "  # type: ignore[attr-defined]
                        "provider, upstream_model, attempts")  # fmt: skip
    by_case = {orjson.loads(r[0])["case"]: r[1:] for r in rows if r[0] and "telemetry" in r[0]}
    miss, hit = by_case["telemetry-miss"], by_case["telemetry-hit"]
    assert miss[0] == "miss" and miss[1] is None and miss[3] is None
    assert hit[0] == "hit" and hit[1] is not None and hit[1] >= 0
    assert miss[2] == Decimal("0.003")  # 1000 in at $1/M, 1000 out at $2/M
    assert hit[2] == 0 and hit[3] == Decimal("0.003")
    assert hit[4:6] == ("mock", "up-gpt") and hit[6] == 0
