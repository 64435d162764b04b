"""Faults around the cache: a Redis that accepts and never answers (a bypass within the
timeout, no failed request), a stream the client abandons (not stored), an answer over
the size cap (not stored); and what a hit exports (span attributes, metrics)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream, free_port
from gateway.app import Settings
from tests.cache.conftest import cache_policy
from tests.conftest import GatewayServer
from tests.telemetry.otlp_receiver import BlackHole, HttpReceiver
from tests.telemetry.test_otel import SERVER, otel_env, wait_for

__all__ = ["otel_env"]  # a fixture, used by name


@pytest.fixture
def silent() -> Iterator[BlackHole]:
    """A Redis that accepts connections and never answers."""
    server = BlackHole(free_port())
    yield server
    server.close()


def serve(tmp_path: Path, mock: MockUpstream, caches: str) -> GatewayServer:
    path = tmp_path / "policy.yaml"
    path.write_text(cache_policy(mock.base_url, caches, {"gpt": ("up-gpt", "c")}))
    return GatewayServer(Settings(policy_path=str(path), watch_policy=False))


def chat(base: str, text: str, **extra: object) -> httpx.Response:
    body = {"model": "gpt", "messages": [{"role": "user", "content": text}], "temperature": 0,
            **extra}  # fmt: skip
    return httpx.post(base + "/v1/chat/completions", json=body, timeout=10)


def test_a_redis_that_never_answers_is_a_bypass_within_the_timeout(
    tmp_path: Path, mock: MockUpstream, silent: BlackHole
) -> None:
    caches = f"  c: {{type: exact, backend: redis, redis_url: 'redis://127.0.0.1:{silent.sock.getsockname()[1]}/0', timeout_ms: 50}}\n"
    with serve(tmp_path, mock, caches) as gw:
        started = time.monotonic()
        for i in range(10):
            response = chat(gw.base_url, f"hello {i % 2}")
            assert response.status_code == 200
            assert response.headers["x-gateway-cache"] == "bypass"
        elapsed = time.monotonic() - started
    assert elapsed < 2.0  # 50 ms for the first lookup, then Redis is skipped for a second
    assert len(mock.requests) == 10


def test_an_abandoned_stream_is_not_stored(tmp_path: Path, mock: MockUpstream) -> None:
    mock.behave("up-gpt", Behavior(text="one two three four five six", chunk_interval_s=0.1))
    with serve(tmp_path, mock, "  c: {type: exact}\n") as gw:
        body = {"model": "gpt", "messages": [{"role": "user", "content": "long story"}],
                "temperature": 0, "stream": True}  # fmt: skip
        with httpx.stream("POST", gw.base_url + "/v1/chat/completions", json=body) as response:
            assert response.headers["x-gateway-cache"] == "miss"
            for _ in response.iter_bytes():
                break  # the first chunk, then the client goes away
        time.sleep(0.5)
        mock.behaviors.clear()
        assert chat(gw.base_url, "long story").headers["x-gateway-cache"] == "miss"
        time.sleep(0.2)
        assert chat(gw.base_url, "long story").headers["x-gateway-cache"] == "hit"


def test_an_answer_over_the_size_cap_is_not_stored(tmp_path: Path, mock: MockUpstream) -> None:
    mock.behave("up-gpt", Behavior(text="x" * 3000))
    with serve(tmp_path, mock, "  c: {type: exact, max_entry_kb: 2}\n") as gw:
        assert chat(gw.base_url, "big").headers["x-gateway-cache"] == "miss"
        time.sleep(0.2)
        assert chat(gw.base_url, "big").headers["x-gateway-cache"] == "miss"
        mock.behave("up-gpt", Behavior(text="small"))
        chat(gw.base_url, "small")
        time.sleep(0.2)
        assert chat(gw.base_url, "small").headers["x-gateway-cache"] == "hit"


def test_a_hit_is_a_span_with_its_status_and_age_and_counts_savings(
    otel_env: pytest.MonkeyPatch, tmp_path: Path, mock: MockUpstream
) -> None:
    with HttpReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        with serve(tmp_path, mock, "  c: {type: exact}\n") as gw:
            chat(gw.base_url, "span", metadata={"n": "1"})
            time.sleep(0.2)
            chat(gw.base_url, "span")
            wait_for(receiver.received, 3)
            deadline = time.monotonic() + 10
            while "gateway.cache.saved" not in receiver.received.metrics:
                assert time.monotonic() < deadline, "no gateway.cache.saved metric"
                time.sleep(0.05)
    servers = sorted((s for s in receiver.received.spans if s.kind == SERVER),
                     key=lambda s: s.start_ns)  # fmt: skip
    assert [s.attributes["gateway.cache.status"] for s in servers] == ["miss", "hit"]
    assert "gateway.cache.age_s" in servers[1].attributes
    children = [s for s in receiver.received.spans if s.parent_span_id == servers[1].span_id]
    assert children == []  # a hit calls no upstream
    assert "gateway.cache.lookups" in receiver.received.metrics
