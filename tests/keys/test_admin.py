"""The admin API: keys and teams created, listed, changed and revoked; secrets shown
once and never stored, logged or audited; gateway keys refused; audit rows for every
change; API keys working beside the policy's, with their limits and model globs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from benchmarks.mock_upstream import MockUpstream
from gateway.app import Settings
from tests.conftest import GatewayServer

ADMIN = "admin-secret-for-tests"
POLICY_KEY = "sk-gw-from-the-policy"


def write(tmp_path: Path, mock: MockUpstream, store: str = "{type: embedded}") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""\
version: 1
telemetry: {{duckdb: {tmp_path / "requests.duckdb"}, flush_interval_s: 0.1}}
providers:
  mock: {{type: openai, base_url: '{mock.base_url}/v1'}}
models:
  chat: {{provider: mock, upstream_model: up-chat}}
  gpt-4o-mini: {{provider: mock, upstream_model: up-mini}}
  other: {{provider: mock, upstream_model: up-other}}
auth:
  keys: [{{id: gitops, sha256: {hashlib.sha256(POLICY_KEY.encode()).hexdigest()}}}]
  admin_keys: [{hashlib.sha256(ADMIN.encode()).hexdigest()}]
teams:
  search: {{limits: {{rpm: 100}}}}
store: {store}
""")
    return path


@pytest.fixture
def gw(tmp_path: Path, mock: MockUpstream) -> Iterator[GatewayServer]:
    with GatewayServer(
        Settings(policy_path=str(write(tmp_path, mock)), watch_policy=False)
    ) as server:
        yield server


def admin(
    gw: GatewayServer, method: str, path: str, key: str = ADMIN, **body: Any
) -> httpx.Response:
    return httpx.request(method, gw.base_url + path, headers={"authorization": f"Bearer {key}"},
                         json=body if body else None, timeout=10)  # fmt: skip


def chat(gw: GatewayServer, key: str, model: str = "chat") -> httpx.Response:
    return httpx.post(gw.v1 + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip


def test_create_use_update_revoke_a_key(gw: GatewayServer, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture,
                                        capfd: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    r = admin(gw, "POST", "/admin/keys", id="app-1", team="search", models=["gpt-4o*", "chat"],
              limits={"rpm": 50}, metadata={"owner": "ana"})  # fmt: skip
    assert r.status_code == 200, r.text
    created = r.json()
    secret = created["key"]
    assert secret.startswith("sk-gw-") and len(secret) >= 6 + 43  # 256 bits, base64url
    assert created["id"] == "app-1" and created["prefix"] == secret[:10]
    assert "sha256" not in created and created["source"] == "api"
    assert chat(gw, secret).status_code == 200
    assert chat(gw, secret, "gpt-4o-mini").status_code == 200  # a glob
    denied = chat(gw, secret, "other")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "model_not_allowed"
    assert chat(gw, POLICY_KEY).status_code == 200  # the policy's keys keep working
    shown = admin(gw, "GET", "/admin/keys/app-1").json()
    assert shown["limits"]["rpm"] == 50 and "key" not in shown
    listed = admin(gw, "GET", "/admin/keys").json()["data"]
    assert [(k["id"], k["source"]) for k in listed] == [("gitops", "policy"), ("app-1", "api")]
    r = admin(gw, "PATCH", "/admin/keys/app-1", models=["other"])
    assert r.status_code == 200 and r.json()["models"] == ["other"]
    time.sleep(1.1)  # the one-second key cache
    assert chat(gw, secret, "other").status_code == 200
    assert admin(gw, "DELETE", "/admin/keys/app-1").json()["revoked_at"]
    time.sleep(1.1)
    assert chat(gw, secret).status_code == 401
    # the secret is nowhere but in the creation answer
    state = (tmp_path / "gateway-state.db").read_bytes()
    assert secret.encode() not in state
    log = duckdb.connect(str(tmp_path / "requests.duckdb"), read_only=True)
    try:
        text = str(log.execute("SELECT * FROM requests").fetchall())
    finally:
        log.close()
    assert secret not in text and "admin" not in text  # admin calls are not request rows
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    out, err = capfd.readouterr()
    for where in (logged, out, err):
        assert secret not in where and secret[10:] not in where


def test_audit_rows_for_every_change_without_secrets(gw: GatewayServer) -> None:
    secret = admin(gw, "POST", "/admin/keys", id="k").json()["key"]
    admin(gw, "POST", "/admin/teams", id="ml", budgets=[{"usd": 100, "period": "month"}])
    admin(gw, "PATCH", "/admin/keys/k", team="ml")
    admin(gw, "DELETE", "/admin/keys/k")
    rows = admin(gw, "GET", "/admin/audit").json()["data"]
    assert [(r["action"], r["kind"], r["id"]) for r in rows] == [
        ("revoke", "key", "k"), ("update", "key", "k"), ("create", "team", "ml"), ("create", "key", "k"),
    ]  # fmt: skip
    assert rows[1]["before"]["team"] is None and rows[1]["after"]["team"] == "ml"
    assert all(r["actor"].startswith("admin:") and r["at"] for r in rows)
    text = str(rows)
    assert secret not in text and "sha256" not in text


def test_admin_api_refuses_gateway_keys_and_strangers(gw: GatewayServer) -> None:
    assert admin(gw, "GET", "/admin/keys", key=POLICY_KEY).status_code == 403
    api_key = admin(gw, "POST", "/admin/keys", id="x").json()["key"]
    assert admin(gw, "GET", "/admin/keys", key=api_key).status_code == 401  # not an admin key
    assert admin(gw, "GET", "/admin/keys", key="nope").status_code == 401
    assert httpx.get(gw.base_url + "/admin/keys").status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"id": "gitops"}, 409, "exists already"),
        ({"id": "bad id!"}, 400, "id"),
        ({"team": "nope"}, 400, "Unknown team"),
        ({"limits": {"rpm": 0}}, 400, "limits.rpm"),
        ({"colour": "red"}, 400, "unknown field"),
        ({"guardrails": {"input": ["nope"]}}, 400, "Unknown guardrail"),
    ],
)
def test_bad_key_requests(gw: GatewayServer, body: dict[str, Any], status: int, words: str) -> None:
    r = admin(gw, "POST", "/admin/keys", **body)
    assert r.status_code == status and words in r.json()["error"]["message"], r.text


def test_policy_keys_and_teams_are_read_only_here(gw: GatewayServer) -> None:
    assert admin(gw, "PATCH", "/admin/keys/gitops", models=["x"]).status_code == 409
    assert admin(gw, "DELETE", "/admin/teams/search").status_code == 409
    assert admin(gw, "GET", "/admin/teams/search").json()["source"] == "policy"
    assert admin(gw, "GET", "/admin/keys/nope").status_code == 404


def test_a_team_with_keys_cannot_be_deleted(gw: GatewayServer) -> None:
    admin(gw, "POST", "/admin/teams", id="ml")
    admin(gw, "POST", "/admin/keys", id="k", team="ml")
    r = admin(gw, "DELETE", "/admin/teams/ml")
    assert r.status_code == 409 and "k" in r.json()["error"]["message"]
    admin(gw, "DELETE", "/admin/keys/k")
    assert admin(gw, "DELETE", "/admin/teams/ml").status_code == 200


def test_api_team_limits_apply_to_its_keys(gw: GatewayServer) -> None:
    admin(gw, "POST", "/admin/teams", id="ml", limits={"rpm": 2})
    a = admin(gw, "POST", "/admin/keys", id="a", team="ml").json()["key"]
    b = admin(gw, "POST", "/admin/keys", id="b", team="ml").json()["key"]
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)
    assert [chat(gw, a).status_code, chat(gw, b).status_code, chat(gw, a).status_code] == [
        200,
        200,
        429,
    ]


def test_the_keys_cli_against_a_running_gateway(gw: GatewayServer) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_URL": gw.base_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "keys", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    made = cli("create", "--id", "cli-key", "--team", "search", "--models", "chat,gpt-*",
               "--rpm", "30", "--budget", "25/month", "--metadata", "owner=ana")  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["key"].startswith("sk-gw-") and created["limits"]["rpm"] == 30
    assert created["budgets"] == [{"usd": "25", "period": "month", "model": None}]
    assert chat(gw, created["key"]).status_code == 200
    assert "cli-key\tapi\tsearch\tactive" in cli("list").stdout
    assert json.loads(cli("show", "cli-key").stdout)["metadata"] == {"owner": "ana"}
    assert cli("revoke", "cli-key").returncode == 0
    assert "cli-key\tapi\tsearch\trevoked" in cli("list").stdout
    missing = cli("show", "nope")
    assert missing.returncode == 1 and "404" in missing.stderr
    env.pop("GATEWAY_ADMIN_KEY")
    assert cli("list").returncode == 2


def test_usage_shows_spend_against_budget(gw: GatewayServer) -> None:
    made = admin(gw, "POST", "/admin/keys", id="spender", team="search", limits={"rpm": 10},
                 budgets=[{"usd": 5, "period": "day"}]).json()  # fmt: skip
    for _ in range(3):
        assert chat(gw, made["key"]).status_code == 200
    time.sleep(0.5)  # settled, and the log flushed
    usage = admin(gw, "GET", "/admin/usage?key=spender&since=1h").json()
    key_scope, team_scope = usage["scopes"]
    assert key_scope["scope"] == "key:spender" and team_scope["scope"] == "team:search"
    rpm = next(x for x in key_scope["limits"] if x["name"] == "rpm")
    assert rpm["limit"] == 10 and 1 <= rpm["used"] <= 3  # (a minute may have turned)
    (budget,) = key_scope["budgets"]
    assert budget["period"] == "day" and budget["usd"] == 5 and budget["resets_in_s"] > 0
    assert budget["spent_usd"] == pytest.approx(0, abs=1e-9)  # the mock model has no price
    assert usage["since"]["requests"] == 3 and usage["since"]["input_tokens"] == 27
    team = admin(gw, "GET", "/admin/usage?team=search").json()
    assert team["scopes"][0]["limits"][0]["limit"] == 100
    assert admin(gw, "GET", "/admin/usage?key=nope").status_code == 404
    assert admin(gw, "GET", "/admin/usage").status_code == 400
    assert admin(gw, "GET", "/admin/usage?key=spender", key=POLICY_KEY).status_code == 403


def test_admin_calls_are_counted_without_their_ids(gw: GatewayServer) -> None:
    """Probe counts label admin calls by their resource, not by each key's id (one
    series per key would grow without bound)."""
    admin(gw, "POST", "/admin/keys", id="m-1")
    admin(gw, "GET", "/admin/keys/m-1")
    admin(gw, "GET", "/admin/keys/m-2")
    time.sleep(0.3)
    scrape = httpx.get(gw.base_url + "/metrics").text
    assert 'url_path="/admin/keys"' in scrape
    assert "m-1" not in scrape and "m-2" not in scrape


def test_a_top_level_admin_keys_list_works_too(tmp_path: Path, mock: MockUpstream) -> None:
    path = write(tmp_path, mock)
    text = path.read_text().replace("  admin_keys: [", "admin_keys: [", 1)
    lines = text.splitlines()
    moved = next(line for line in lines if line.startswith("admin_keys:"))
    lines.remove(moved)
    path.write_text("\n".join(lines) + "\n" + moved + "\n")
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as server:
        assert admin(server, "GET", "/admin/keys").status_code == 200
