"""Selection over real sockets: weights, latency, sticky users, breakers, Retry-After."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.mock_upstream import Behavior
from tests.routing.conftest import Mocks, calls

CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


def ask(client: Any, model: str = "m", **extra: object) -> Any:
    return client.post("/v1/chat/completions", json={"model": model, **CHAT, **extra})


def test_weights_within_five_percent(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    targets:
      - {provider: a, upstream_model: x, weight: 3}
      - {provider: b, upstream_model: x, weight: 1}
      - {provider: c, upstream_model: x, weight: 1}
"""
    for server in mocks.values():
        server.record = True
    with serve(models) as (_, client):
        for _ in range(2000):
            assert ask(client).status_code == 200
    share = {k: v / 2000 for k, v in calls(mocks).items()}
    assert abs(share["a"] - 0.6) <= 0.05 and abs(share["b"] - 0.2) <= 0.05
    assert abs(share["c"] - 0.2) <= 0.05


def test_latency_moves_to_the_faster_target_and_back(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    strategy: latency
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
"""
    mocks["a"].behave("x", Behavior(delay_s=0.02))
    mocks["b"].behave("x", Behavior(delay_s=0.004))  # 5x faster
    with serve(models) as (_, client):
        for _ in range(200):
            ask(client)
        before = calls(mocks)
        for _ in range(100):
            ask(client)
        fast = (calls(mocks)["b"] - before["b"]) / 100
        assert fast >= 0.9, fast
        mocks["b"].behave("x", Behavior(delay_s=0.02))  # the fast one slows down
        for _ in range(150):
            ask(client)
        before = calls(mocks)
        for _ in range(150):
            ask(client)
        share = (calls(mocks)["b"] - before["b"]) / 150
        assert 0.25 <= share <= 0.75, share


def test_sticky_users_keep_their_target(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    sticky: user
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
      - {provider: c, upstream_model: x}
"""
    with serve(models) as (_, client):
        homes = {}
        for user in (f"user-{i}" for i in range(30)):
            seen = set()
            for _ in range(5):
                before = calls(mocks)
                ask(client, user=user)
                seen |= {k for k, v in calls(mocks).items() if v > before[k]}
            assert len(seen) == 1, (user, seen)
            homes[user] = seen.pop()
        assert len(set(homes.values())) == 3  # spread over all three
        before = calls(mocks)
        client.post("/v1/chat/completions", headers={"x-gateway-session": "user-7"},
                    json={"model": "m", **CHAT})  # fmt: skip
        assert [k for k, v in calls(mocks).items() if v > before[k]] == [homes["user-7"]]


def test_a_failing_target_is_ejected_then_probed(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
    retry: {attempts: 1, backoff_s: 0}
    circuit_breaker: {failure_ratio: 0.5, min_requests: 5, window_s: 30, cooldown_s: 1}
"""
    mocks["a"].behave("x", Behavior(status=503))
    with serve(models) as (_, client):
        for _ in range(40):
            assert ask(client).status_code == 200  # the retry goes to b
        failed_a = calls(mocks)["a"]
        assert 5 <= failed_a <= 12  # ejected after min_requests (a few more while it fills)
        for _ in range(20):
            ask(client)
        assert calls(mocks)["a"] == failed_a  # open: no traffic
        routes = client.get("/v1/gateway/routes").json()
        breaker = {t["provider"]: t["breaker"] for t in routes["models"][0]["targets"]}
        assert breaker == {"a": "open", "b": "closed"}
        metrics = client.get("/metrics").text
        assert 'gateway_routing_breaker_state{gateway_target="a/x"} 2.0' in metrics
        assert 'gateway_attempt_outcome="retry",gateway_target="a/x"' in metrics
        mocks["a"].behaviors.clear()  # healthy again
        time.sleep(1.1)
        for _ in range(30):
            ask(client)
        assert calls(mocks)["a"] > failed_a + 1  # probed, closed, back in rotation


def test_retry_after_on_a_429_is_respected(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    strategy: ordered
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
    retry: {attempts: 1, backoff_s: 0}
"""
    mocks["a"].behave("x", Behavior(status=429, headers={"retry-after": "2"}, error={
        "error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}))  # fmt: skip
    with serve(models) as (_, client):
        started = time.monotonic()
        assert ask(client).status_code == 200  # a said 429, the retry went to b
        mocks["a"].behaviors.clear()
        while time.monotonic() - started < 1.8:
            ask(client)
        assert calls(mocks)["a"] == 1  # no call to a for 2 s
        time.sleep(max(0.0, 2.1 - (time.monotonic() - started)))
        ask(client)
        assert calls(mocks)["a"] == 2  # ordered: a again once its Retry-After passed


def test_rate_limit_headers_steer_away_before_a_429(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    strategy: ordered
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
"""
    mocks["a"].behave("x", Behavior(headers={"x-ratelimit-remaining-requests": "0",
                                             "x-ratelimit-reset-requests": "1s"}))  # fmt: skip
    with serve(models) as (_, client):
        ask(client)
        for _ in range(10):
            ask(client)
        assert calls(mocks) == {"a": 1, "b": 10, "c": 0}
        time.sleep(1.1)
        ask(client)
        assert calls(mocks)["a"] == 2


def test_everything_failing_returns_the_last_error_and_the_attempts(serve: Any,
                                                                    mocks: Mocks) -> None:  # fmt: skip
    models = """\
  m:
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
    retry: {attempts: 2, backoff_s: 0}
"""
    for name in ("a", "b"):
        mocks[name].behave("x", Behavior(status=503))
    with serve(models) as (_, client):
        r = ask(client)
    assert r.status_code == 503 and r.json()["error"]["message"] == "mock failure"
    assert r.headers["x-gateway-attempts"] == "3"
