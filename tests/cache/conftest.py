"""Fixtures for the cache tests: policies with caches, and a Redis server of their own."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from benchmarks.mock_upstream import free_port


@dataclass
class RedisServer:
    """Debian's redis-server on a loopback port, no persistence; stoppable and restartable
    on the same port (a test kills it mid-run)."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (.ci/run installs Debian's)"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return self
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    # .ci/run installs Debian's redis-server; in CI a missing one fails instead of skipping
    if shutil.which("redis-server") is None and not os.environ.get("CI"):
        pytest.skip("needs Debian's redis-server (.ci/run installs it)")
    server = RedisServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.proc is None:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


def cache_policy(mock_url: str, caches: str, models: dict[str, tuple[str, str | None]],
                 extra: str = "", guardrails: dict[str, str] | None = None) -> str:  # fmt: skip
    """A policy on the mock upstream: `models` maps alias -> (upstream model, cache name);
    `caches` is the YAML under `caches:`."""
    lines = []
    for alias, (upstream, cache) in models.items():
        lines += [f"  {alias}:", "    provider: mock", f"    upstream_model: {upstream}",
                  "    price: {input_per_mtok: 1, output_per_mtok: 2}"]  # fmt: skip
        if cache:
            lines.append(f"    cache: {cache}")
        if guardrails and alias in guardrails:
            lines.append(f"    guardrails: {guardrails[alias]}")
    return (
        f"version: 1\nproviders:\n  mock:\n    type: openai\n    base_url: {mock_url}/v1\n"
        f"    api_key: ${{TEST_UPSTREAM_KEY:-sk-upstream-secret}}\n    timeout_s: 2\nmodels:\n" + "\n".join(lines)
        + "\ncaches:\n" + caches + extra
    )  # fmt: skip
