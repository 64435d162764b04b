"""`gateway cache clear | stats` against a running gateway process: Redis caches directly,
memory caches through the gateway's admin endpoints; one tenant cleared, the other kept."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.mock_upstream import MockUpstream
from gateway.auth import hash_key
from tests.cache.conftest import cache_policy
from tests.conftest import gateway_process

KEYS = {"team-a": "sk-gw-team-a", "team-b": "sk-gw-team-b"}
AUTH = "auth:\n  keys:\n" + "".join(
    f"    - {{id: {k}, sha256: {hash_key(v)}}}\n" for k, v in KEYS.items()
)  # fmt: skip


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def status(base: str, team: str, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0}
    response = httpx.post(base + "/v1/chat/completions", json=body, timeout=10,
                          headers={"authorization": f"Bearer {KEYS[team]}"})  # fmt: skip
    assert response.status_code == 200, response.text
    time.sleep(0.2)
    return response.headers["x-gateway-cache"]


def test_clear_one_namespace_then_all(tmp_path: Path, mock: MockUpstream, redis_url: str) -> None:
    caches = (f"  shared: {{type: exact, backend: redis, redis_url: '{redis_url}'}}\n"
              "  local: {type: exact}\n")  # fmt: skip
    db = tmp_path / "requests.duckdb"
    policy = tmp_path / "policy.yaml"
    policy.write_text(cache_policy(
        mock.base_url, caches, {"r": ("up-r", "shared"), "m": ("up-m", "local")},
        AUTH + f"telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.1\n"))  # fmt: skip
    with gateway_process(policy, tmp_path / "gw.log") as base:
        for model in ("r", "m"):
            for team in KEYS:
                assert status(base, team, model) == "miss"
                assert status(base, team, model) == "hit"
        out = gateway("cache", "clear", "--policy", str(policy), "--url", base,
                      "--namespace", "team-a")  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert (
            "shared: removed 1 entries" in out.stdout and "local: removed 1 entries" in out.stdout
        )
        for model in ("r", "m"):
            assert status(base, "team-a", model) == "miss"
            assert status(base, "team-b", model) == "hit"
        time.sleep(0.3)
        shown = gateway("cache", "stats", "--policy", str(policy), "--url", base)
        assert shown.returncode == 0, shown.stderr
        lines = {line.split()[0]: line.split() for line in shown.stdout.splitlines() if line}
        assert lines["shared"][1:4] == ["exact", "redis", "2"]
        assert lines["local"][1:4] == ["exact", "memory", "2"]
        assert "hit_rate" in shown.stdout and "saved_usd" in shown.stdout
        out = gateway("cache", "clear", "--policy", str(policy), "--url", base)
        assert (
            "shared: removed 2 entries" in out.stdout and "local: removed 2 entries" in out.stdout
        )
        assert status(base, "team-b", "r") == "miss"
    offline = gateway("cache", "clear", "--policy", str(policy), "--url", base)
    assert offline.returncode == 1  # the Redis cache cleared, the memory one not reachable
    assert "shared: removed" in offline.stdout and "local: not cleared" in offline.stderr
