"""Limits across replicas: two or three `gateway serve` processes sharing one Redis (and
two workers sharing the embedded store) behave as one limiter."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from benchmarks.mock_upstream import Behavior, MockUpstream, free_port
from tests.cache.conftest import RedisServer
from tests.conftest import gateway_process, wait_until_ready

KEY = "sk-gw-replica-test"


def write(tmp_path: Path, mock: MockUpstream, store: str, extra: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""\
version: 1
providers:
  mock: {{type: openai, base_url: '{mock.base_url}/v1', timeout_s: 10}}
models:
  chat:
    provider: mock
    upstream_model: up-chat
    price: {{input_per_mtok: 100, output_per_mtok: 100}}   # 17 tokens: $0.0017 a request
auth:
  keys: [{{id: app, sha256: {hashlib.sha256(KEY.encode()).hexdigest()}}}]
store: {store}
{extra}""")
    return path


@contextmanager
def replicas(path: Path, tmp_path: Path, n: int) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [stack.enter_context(gateway_process(path, tmp_path / f"r{i}.log")) for i in range(n)]


def ask(base: str, max_tokens: int = 8) -> int:
    r = httpx.post(base + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                   json={"model": "chat", "max_tokens": max_tokens,
                         "messages": [{"role": "user", "content": "Hi"}]}, timeout=30)  # fmt: skip
    return r.status_code


def spread(bases: list[str], n: int, max_tokens: int = 8) -> list[int]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: ask(bases[i % len(bases)], max_tokens), range(n)))


def away_from_a_minute_boundary() -> None:
    if time.time() % 60 > 50:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_ten_rpm_across_three_replicas_lets_exactly_ten_through(
    tmp_path: Path, mock: MockUpstream, redis_url: str
) -> None:
    path = write(tmp_path, mock, f"{{type: redis, url: '{redis_url}', timeout_ms: 3000}}",
                 "keys_defaults: {limits: {rpm: 10}}\n")  # fmt: skip
    with replicas(path, tmp_path, 3) as bases:
        away_from_a_minute_boundary()
        codes = spread(bases, 40)
    assert codes.count(200) == 10 and codes.count(429) == 30, codes


def test_a_budget_under_concurrency_overshoots_by_at_most_one_reservation(
    tmp_path: Path, mock: MockUpstream, redis_url: str
) -> None:
    """$0.01 a day; a request reserves 9 + 100 tokens ($0.0109, over the whole budget:
    the first is still let in) and really costs 17 tokens ($0.0017)."""
    path = write(tmp_path, mock, f"{{type: redis, url: '{redis_url}', timeout_ms: 3000}}",
                 "keys_defaults: {budgets: [{usd: 0.01, period: day}]}\n"
                 "limits: {reserve_output_tokens: 100}\n")  # fmt: skip
    mock.behave("up-chat", Behavior(delay_s=2))
    with replicas(path, tmp_path, 2) as bases:
        codes = spread(bases, 20, max_tokens=100)
        assert codes.count(200) == 1  # one reservation in flight spends the budget
        mock.behaviors.clear()
        time.sleep(0.5)  # settled: $0.0017 spent, room again
        passed = 0
        while ask(bases[passed % 2], max_tokens=100) == 200:
            passed += 1
            assert passed < 20
        time.sleep(0.3)
    spent = (1 + passed) * 0.0017
    assert spent <= 0.01 + 0.0109  # at most one reservation over
    assert passed >= 4  # and the budget is used, not refused early


def test_concurrency_leases_of_a_killed_replica_expire(
    tmp_path: Path, mock: MockUpstream, redis_url: str
) -> None:
    path = write(tmp_path, mock, f"{{type: redis, url: '{redis_url}', timeout_ms: 3000}}",
                 "keys_defaults: {limits: {concurrent: 1}}\nlimits: {lease_s: 2}\n")  # fmt: skip
    mock.behave("up-chat", Behavior(delay_s=4))
    port = free_port()
    victim = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port),
                               "--policy", str(path), "--no-access-log"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_until_ready(victim, f"http://127.0.0.1:{port}", 30)
        with ThreadPoolExecutor(1) as pool, gateway_process(path, tmp_path / "b.log") as other:
            pool.submit(ask, f"http://127.0.0.1:{port}")
            time.sleep(0.5)  # the victim holds the one lease
            mock.behaviors.clear()
            assert ask(other) == 429
            os.kill(victim.pid, signal.SIGKILL)  # it dies mid-request, never settling
            victim.wait(10)
            deadline = time.monotonic() + 5
            while ask(other) != 200:
                assert time.monotonic() < deadline, "the dead replica's lease never expired"
                time.sleep(0.2)
    finally:
        victim.kill()
        victim.wait(10)


def test_redis_down_closed_is_503_open_passes_and_both_recover(
    tmp_path: Path, mock: MockUpstream, redis_server: RedisServer, redis_url: str
) -> None:
    for on_error, while_down in (("closed", 503), ("open", 200)):
        path = write(tmp_path, mock, f"{{type: redis, url: '{redis_url}', on_error: {on_error}, "
                     "timeout_ms: 100}", "keys_defaults: {limits: {rpm: 1000}}\n")  # fmt: skip
        with gateway_process(path, tmp_path / f"{on_error}.log") as base:
            assert ask(base) == 200
            redis_server.stop()
            try:
                started = time.monotonic()
                r = httpx.post(base + "/v1/chat/completions", timeout=10,
                               headers={"authorization": f"Bearer {KEY}"},
                               json={"model": "chat", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
                assert r.status_code == while_down and time.monotonic() - started < 3
                if while_down == 503:
                    assert r.json()["error"]["code"] == "limits_unavailable"
                    assert r.headers["retry-after"] == "1"
                ready = httpx.get(base + "/readyz").json()["limits"]
                assert ready["enforcing"] == "degraded" and ready["on_error"] == on_error
            finally:
                redis_server.start()
            deadline = time.monotonic() + 10
            while ask(base) != 200:
                assert time.monotonic() < deadline, "no recovery once Redis was back"
                time.sleep(0.2)
            assert httpx.get(base + "/readyz").json()["limits"]["enforcing"] == "ok"
            if on_error == "open":
                scrape = httpx.get(base + "/metrics").text
                assert "gateway_limits_degraded_total 1.0" in scrape


def test_the_embedded_store_under_two_workers(tmp_path: Path, mock: MockUpstream) -> None:
    path = write(tmp_path, mock, f"{{type: embedded, path: '{tmp_path / 'state'}'}}",
                 "keys_defaults: {limits: {rpm: 10}}\n")  # fmt: skip
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--port", str(port),
                             "--policy", str(path), "--workers", "2", "--no-access-log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, base, 60)
        away_from_a_minute_boundary()
        codes = spread([base], 30)
    finally:
        proc.terminate()
        proc.wait(30)
    assert codes.count(200) == 10 and codes.count(429) == 20, codes
