"""`affinity: prefix` keeps requests that share a system prompt and tools on one target,
so the upstream's prompt cache keeps paying; `gateway routes` prints the table."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.routing.conftest import Mocks

SYSTEMS = [f"You are assistant number {i}. Follow the house style guide." for i in range(12)]


def cached_share(client: Any, model: str) -> float:
    cached = prompt = 0
    for round_ in range(6):
        for system in SYSTEMS:
            body = {"model": model, "messages": [{"role": "system", "content": system},
                                                 {"role": "user", "content": f"q{round_}"}]}  # fmt: skip
            usage = client.post("/v1/chat/completions", json=body).json()["usage"]
            prompt += usage["prompt_tokens"]
            cached += usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    return cached / prompt


def test_prefix_affinity_keeps_the_prompt_cache(serve: Any, mocks: Mocks) -> None:
    models = """\
  spread:
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
      - {provider: c, upstream_model: x}
  kept:
    affinity: prefix
    targets:
      - {provider: a, upstream_model: x}
      - {provider: b, upstream_model: x}
      - {provider: c, upstream_model: x}
"""
    for server in mocks.values():
        server.prefix_cache = True
    with serve(models) as (_, client):
        without = cached_share(client, "spread")
        for server in mocks.values():
            server.prefixes.clear()
        with_affinity = cached_share(client, "kept")
    # 12 prefixes x 6 rounds: with affinity only each prefix's first request misses (5/6)
    assert with_affinity >= 0.8
    assert without < with_affinity - 0.15, (without, with_affinity)
    print(f"cached-token share: {without:.3f} spread, {with_affinity:.3f} with affinity")


def test_gateway_routes_prints_the_table(serve: Any, mocks: Mocks) -> None:
    models = """\
  m:
    strategy: least_busy
    targets:
      - {provider: a, upstream_model: x, weight: 2}
      - {provider: b, upstream_model: y}
"""
    with serve(models) as (gw, client):
        client.post("/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "Hi"}]})  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "gateway", "routes", "--url", gw.base_url],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[2:]]
    assert [r[:5] for r in rows] == [["m", "least_busy", "a", "x", "2"],
                                     ["m", "least_busy", "b", "y", "1"]]  # fmt: skip
    assert all("closed" in r for r in rows)  # (an empty ewma_ms cell shifts the split)


def test_the_routes_endpoint_takes_a_gateway_key_when_keys_exist(tmp_path: Any,
                                                                 mocks: Mocks) -> None:  # fmt: skip
    import httpx

    from gateway.app import Settings
    from gateway.auth import hash_key
    from tests.conftest import GatewayServer
    from tests.routing.conftest import providers

    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\n"
        + providers(mocks)
        + f"""\
auth:
  keys: [{{id: ops, sha256: {hash_key("sk-ops")}}}]
models:
  m: {{provider: a, upstream_model: x}}
"""
    )
    with GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as gw:
        assert httpx.get(gw.v1 + "/gateway/routes").status_code == 401
        ok = httpx.get(gw.v1 + "/gateway/routes", headers={"authorization": "Bearer sk-ops"})
    assert ok.status_code == 200 and ok.json()["models"][0]["model"] == "m"
