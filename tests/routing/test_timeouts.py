"""`timeouts.connect_s` (here through an egress proxy that never answers) and `total_s`
(every attempt and wait together) bound a call whatever the provider's own settings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.mock_upstream import Behavior, free_port
from gateway.app import Settings
from tests.conftest import GatewayServer
from tests.routing.conftest import Mocks
from tests.telemetry.otlp_receiver import BlackHole

CHAT = {"messages": [{"role": "user", "content": "Hi"}]}


def test_connect_s_bounds_the_connect_whatever_the_provider_says(tmp_path: Path) -> None:
    hole = BlackHole(free_port())  # a proxy that accepts and never opens the tunnel
    port = hole.sock.getsockname()[1]
    policy = tmp_path / "p.yaml"
    policy.write_text(f"""\
version: 1
providers:
  far:
    type: openai
    base_url: https://api.example.com/v1
    connect_timeout_s: 20
    proxy_url: http://127.0.0.1:{port}
models:
  m:
    provider: far
    upstream_model: x
    timeouts: {{connect_s: 0.3}}
""")
    try:
        with GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as gw:
            started = time.monotonic()
            r = httpx.post(gw.v1 + "/chat/completions", json={"model": "m", **CHAT}, timeout=30)
            elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    assert elapsed < 3  # 0.3 s, not the provider's 20


def test_total_s_bounds_every_attempt_together(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
    retry: {attempts: 5, backoff_s: 0}
    timeouts: {total_s: 0.6}
"""
    for name in ("a", "b"):
        mocks[name].behave("x", Behavior(delay_s=0.4, status=503))
    with serve(models) as (_, client):
        started = time.monotonic()
        r = client.post("/v1/chat/completions", json={"model": "m", **CHAT})
        elapsed = time.monotonic() - started
    assert r.status_code in (503, 504)
    assert elapsed < 1.2  # not six attempts of 0.4 s
    assert int(r.headers["x-gateway-attempts"]) <= 2
