"""`backend: redis`: gateway processes sharing one Redis behave as one cache, and Redis
going away mid-run costs no request (bypass), then serves hits again once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.mock_upstream import MockUpstream
from tests.cache.conftest import RedisServer, cache_policy
from tests.conftest import gateway_process

CACHES = ("  shared: {{type: exact, backend: redis, redis_url: '{url}', timeout_ms: 50}}\n"
          "  similar: {{type: semantic, backend: redis, redis_url: '{url}'}}\n")  # fmt: skip


def ask(base: str, text: str, model: str = "gpt") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "temperature": 0}
    response = httpx.post(base + "/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response


def status(base: str, text: str, model: str = "gpt") -> str:
    return ask(base, text, model).headers["x-gateway-cache"]


@pytest.fixture
def replicas(tmp_path: Path, mock: MockUpstream, redis_url: str) -> Iterator[list[str]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(cache_policy(mock.base_url, CACHES.format(url=redis_url),
                                   {"gpt": ("up-gpt", "shared"), "faq": ("up-faq", "similar")}))  # fmt: skip
    with (gateway_process(policy, tmp_path / "a.log") as a,
          gateway_process(policy, tmp_path / "b.log") as b,
          gateway_process(policy, tmp_path / "c.log") as c):  # fmt: skip
        yield [a, b, c]


def test_three_replicas_share_one_cache(replicas: list[str], mock: MockUpstream) -> None:
    a, b, c = replicas
    assert status(a, "shared question") == "miss"
    time.sleep(0.2)
    assert status(b, "shared question") == "hit"
    assert status(c, "shared question") == "hit"
    assert len(mock.requests) == 1
    assert ask(b, "shared question").json() == ask(a, "shared question").json()


def test_replicas_share_semantic_entries_and_vectors(replicas: list[str],
                                                     mock: MockUpstream) -> None:  # fmt: skip
    a, b, c = replicas
    assert status(a, "What is the capital of France?", "faq") == "miss"
    time.sleep(0.3)
    assert status(b, "What's the capital of France?", "faq") == "semantic_hit"
    assert status(c, "What is the capital of Spain?", "faq") == "miss"
    assert len(mock.requests) == 2


def test_redis_killed_mid_run_is_a_bypass_then_hits_again(
    replicas: list[str], mock: MockUpstream, redis_server: RedisServer, tmp_path: Path
) -> None:
    a, b, _ = replicas
    ask(a, "before the outage")
    time.sleep(0.2)
    assert status(b, "before the outage") == "hit"
    redis_server.stop()
    try:
        for i in range(20):  # every request answered, none failed
            assert status(a if i % 2 else b, f"during the outage {i % 3}") == "bypass"
    finally:
        redis_server.start()
    time.sleep(1.2)  # a replica retries its store a second after the last failure
    assert status(a, "after the outage") == "miss"
    time.sleep(0.2)
    assert status(b, "after the outage") == "hit"
    logs = (tmp_path / "a.log").read_text()
    assert logs.count("store unavailable") == 1  # once per outage, not once per request
    assert "store back after" in logs
