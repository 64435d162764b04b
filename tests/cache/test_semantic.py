"""The semantic cache end to end: a paraphrase of a stored question is a `semantic_hit`
(in memory and in Redis, across replicas), a question that differs in a number, a
negation or a name is not, nothing crosses tenants or contexts, and verified hits
measure the false-hit rate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from gateway.auth import hash_key
from tests.cache.conftest import cache_policy
from tests.conftest import GatewayServer
from tests.faults.conftest import request_rows

KEYS = {"team-a": "sk-gw-team-a", "team-b": "sk-gw-team-b"}
AUTH = "auth:\n  keys:\n" + "".join(
    f"    - {{id: {k}, sha256: {hash_key(v)}}}\n" for k, v in KEYS.items()
)  # fmt: skip
TELEMETRY = "telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.1\n"


def caches(redis_url: str | None) -> str:
    backend = f", backend: redis, redis_url: '{redis_url}'" if redis_url else ""
    return (f"  similar: {{type: semantic{backend}}}\n"
            f"  checked: {{type: semantic, verify_fraction: 1.0{backend}}}\n")  # fmt: skip


@pytest.fixture(scope="module", params=["memory", "redis"])
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
       mock: MockUpstream) -> Iterator[GatewayServer]:  # fmt: skip
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    tmp = tmp_path_factory.mktemp(f"semantic-{request.param}")
    path = tmp / "policy.yaml"
    models: dict[str, tuple[str, str | None]] = {
        "gpt": ("up-gpt", "similar"),
        "checked": ("up-checked", "checked"),
    }
    db = tmp / "log" / "requests.duckdb"
    path.write_text(cache_policy(mock.base_url, caches(url), models,
                                 AUTH + TELEMETRY.format(db=db)))  # fmt: skip
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as server:
        server.tmp = tmp  # type: ignore[attr-defined]
        yield server


def ask(gw: GatewayServer, text: str, team: str = "team-a", model: str = "gpt",
        system: str | None = None) -> httpx.Response:  # fmt: skip
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    response = httpx.post(gw.v1 + "/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {KEYS[team]}"},
                          json={"model": model, "messages": messages, "temperature": 0})  # fmt: skip
    assert response.status_code == 200, response.text
    time.sleep(0.3)  # the entry (and its vector) is written after the response
    return response


def status(response: httpx.Response) -> str:
    return response.headers["x-gateway-cache"]


def test_a_paraphrase_is_a_semantic_hit(gw: GatewayServer, mock: MockUpstream) -> None:
    mock.behave("up-gpt", Behavior(text="Paris."))
    tag = f"{id(gw)}"  # the module runs twice (memory, redis): its own partition each time
    system = f"Answer in one word. Run {tag}."
    assert status(ask(gw, "What is the capital of France?", system=system)) == "miss"
    hit = ask(gw, "What's the capital of France?", system=system)
    assert status(hit) == "semantic_hit"
    assert hit.json()["choices"][0]["message"]["content"] == "Paris."
    assert status(ask(gw, "What is the capital of France?", system=system)) == "hit"  # exact
    assert len(mock.requests) == 1


def test_numbers_negations_and_names_are_not_confused(gw: GatewayServer,
                                                      mock: MockUpstream) -> None:  # fmt: skip
    system = f"Be exact. Run {id(gw)}."
    for first, second in (("Convert 5 km to miles.", "Convert 50 km to miles."),
                          ("Is it safe to eat raw eggs?", "Is it unsafe to eat raw eggs?"),
                          ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
                          ("What is the capital of France?", "What is the capital of Spain?")):  # fmt: skip
        ask(gw, first, system=system)
        assert status(ask(gw, second, system=system)) == "miss", second


def test_tenants_and_contexts_never_share(gw: GatewayServer, mock: MockUpstream) -> None:
    system = f"Be brief. Run {id(gw)}."
    ask(gw, "How do I reset my password?", system=system)
    assert status(ask(gw, "How can I reset my password?", team="team-b", system=system)) == "miss"
    other = f"Be verbose. Run {id(gw)}."
    assert status(ask(gw, "How can I reset my password?", system=other)) == "miss"
    assert status(ask(gw, "How can I reset my password?", system=system)) == "semantic_hit"


def test_verified_hits_measure_the_false_hit_rate(gw: GatewayServer, mock: MockUpstream) -> None:
    system = f"Run {id(gw)}."
    mock.behave("up-checked", Behavior(text="You can reset it from the settings page."))
    ask(gw, "How do I reset my password?", model="checked", system=system)
    assert status(ask(gw, "How can I reset my password?", model="checked",
                      system=system)) == "semantic_hit"  # fmt: skip
    mock.behave("up-checked", Behavior(text="Bananas are yellow and rich in potassium."))
    assert status(ask(gw, "What are the steps to reset my password?", model="checked",
                      system=system)) == "semantic_hit"  # fmt: skip
    time.sleep(0.5)  # the checks run after the responses
    assert len(mock.requests) == 3  # the miss, then one check per hit
    stats = httpx.get(gw.base_url + "/admin/cache/stats").json()
    checked = next(c for c in stats["caches"] if c["name"] == "checked")
    assert checked["counts"]["verify_match"] >= 1 and checked["counts"]["verify_mismatch"] >= 1
    assert 0 < checked["false_hit_rate"] < 1
    metrics = httpx.get(gw.base_url + "/metrics").text
    assert 'gateway_cache_verifications_total{gateway_cache_verification="mismatch"' in metrics
    time.sleep(0.3)
    rows = request_rows(gw.tmp, "cache_status, request_id")  # type: ignore[attr-defined]
    statuses = [r[0] for r in rows]
    assert "verify_match" in statuses and "verify_mismatch" in statuses
    assert all(str(r[1]).endswith("-verify") for r in rows if str(r[0]).startswith("verify_"))


def test_the_embedding_is_of_the_last_user_message_only(tmp_path: Path) -> None:
    from gateway.cache.key import last_user_text

    body = {"messages": [{"role": "user", "content": "Earlier question"},
                         {"role": "assistant", "content": "Earlier answer"},
                         {"role": "user", "content": [{"type": "text", "text": "Now this"}]}]}  # fmt: skip
    assert last_user_text("chat", body) == "Now this"
