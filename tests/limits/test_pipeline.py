"""Limits on the request path (embedded store, one gateway): 429s in OpenAI's JSON with
Retry-After and x-ratelimit-* headers, tokens counted in and out, budgets, per-model
limits, concurrency, end users, settlement on every outcome."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from tests.conftest import GatewayServer

KEY_A, KEY_B = "sk-gw-test-a", "sk-gw-test-b"
TEAM = "teams: {search: {}}\n"


def policy(mock: MockUpstream, tmp_path: Path, extra: str, key_extra: str = "") -> str:
    return f"""\
version: 1
telemetry: {{duckdb: {tmp_path / "requests.duckdb"}, flush_interval_s: 0.1}}
providers:
  mock: {{type: openai, base_url: '{mock.base_url}/v1'}}
models:
  chat:
    provider: mock
    upstream_model: up-chat
    price: {{input_per_mtok: 1000000, output_per_mtok: 1000000}}   # $1 a token: budgets move fast
  other: {{provider: mock, upstream_model: up-other, price: {{input_per_mtok: 0, output_per_mtok: 0}}}}
auth:
  keys:
    - {{id: a, sha256: {hashlib.sha256(KEY_A.encode()).hexdigest()}, team: search{key_extra}}}
    - {{id: b, sha256: {hashlib.sha256(KEY_B.encode()).hexdigest()}}}
{extra if "teams:" in extra else TEAM + extra}"""


@contextmanager
def gateway(
    mock: MockUpstream, tmp_path: Path, extra: str, key_extra: str = ""
) -> Iterator[GatewayServer]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy(mock, tmp_path, extra, key_extra))
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw:
        yield gw


def ask(gw: GatewayServer, key: str = KEY_A, model: str = "chat", **body: Any) -> httpx.Response:
    return httpx.post(gw.v1 + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Hi"}], **body},
                      timeout=10)  # fmt: skip


def away_from_a_minute_boundary() -> None:
    """Minute windows are calendar-aligned: a test counting within one waits out a
    boundary that is under 5 s away."""
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_rpm_429_with_openai_headers(mock: MockUpstream, tmp_path: Path) -> None:
    away_from_a_minute_boundary()
    with gateway(mock, tmp_path, "keys_defaults: {limits: {rpm: 3}}\n") as gw:
        answers = [ask(gw) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        first = answers[0].headers
        assert first["x-ratelimit-limit-requests"] == "3"
        assert first["x-ratelimit-remaining-requests"] == "2"
        assert first["x-ratelimit-reset-requests"].endswith("s")
        refused = answers[3]
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
        assert "key:a" in error["message"] and "3 requests per minute" in error["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert ask(gw, KEY_B).status_code == 200  # another key has its own window
    assert len(mock.requests) == 4  # the refused request never went upstream


def test_the_openai_sdk_sees_a_rate_limit_error(mock: MockUpstream, tmp_path: Path) -> None:
    away_from_a_minute_boundary()
    with gateway(mock, tmp_path, "keys_defaults: {limits: {rpm: 1}}\n") as gw, \
            openai.OpenAI(base_url=gw.v1, api_key=KEY_A, max_retries=0) as client:  # fmt: skip
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "x"}]
            )
    assert caught.value.code == "rate_limit_exceeded"


def test_tpm_counts_input_and_output(mock: MockUpstream, tmp_path: Path) -> None:
    """The mock reports 9 input + 8 output tokens: a 40-token minute takes 3 requests
    (17, 34, then 51 > 40 refuses the fourth), so output tokens count."""
    away_from_a_minute_boundary()
    mock.behave("up-chat", Behavior(usage={"prompt_tokens": 9, "completion_tokens": 8}))
    with gateway(
        mock, tmp_path, "keys_defaults: {limits: {tpm: 40}}\nlimits: {reserve_output_tokens: 8}\n"
    ) as gw:
        codes = []
        for _ in range(4):
            codes.append(ask(gw, max_tokens=8).status_code)
            time.sleep(0.1)  # settled before the next
        assert codes == [200, 200, 200, 429]
        last = ask(gw)
        assert last.json()["error"]["type"] == "tokens"


def test_a_spent_budget_is_insufficient_quota(mock: MockUpstream, tmp_path: Path) -> None:
    """$1 a token: the first request (17 tokens) spends $17 of a $20 day; the second is
    still let in (room left), the third refused."""
    with gateway(mock, tmp_path, "teams:\n  search: {budgets: [{usd: 20, period: day}]}\n") as gw:
        codes = []
        for _ in range(3):
            codes.append(ask(gw, max_tokens=8).status_code)
            time.sleep(0.1)
        assert codes == [200, 200, 429]
        refused = ask(gw)
        error = refused.json()["error"]
        assert error["code"] == "insufficient_quota" and "team:search" in error["message"]
        assert int(refused.headers["retry-after"]) > 60  # the day's end
        assert ask(gw, KEY_B).status_code == 200  # not in the team
        time.sleep(0.3)  # the request log flushed
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "gateway", "stats", "--db",
                          str(tmp_path / "requests.duckdb"), "--by", "team", "--policy",
                          str(tmp_path / "policy.yaml")], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    search = next(line for line in out.stdout.splitlines() if line.startswith("search"))
    assert "$20/day" in search and " 34" in search  # two answered requests: $34 spent


def test_per_model_limits_and_end_users(mock: MockUpstream, tmp_path: Path) -> None:
    away_from_a_minute_boundary()
    extra = ("keys_defaults: {limits: {models: {chat: {rpm: 1}}}}\n"
             "end_users: {limits: {rpm: 2}}\n")  # fmt: skip
    with gateway(mock, tmp_path, extra) as gw:
        assert ask(gw).status_code == 200
        assert ask(gw).status_code == 429  # chat: 1 a minute for key a
        assert ask(gw, model="other").status_code == 200  # another model
        assert ask(gw, KEY_B, user="alice").status_code == 200
        assert ask(gw, KEY_B, user="alice", model="other").status_code == 200
        r = ask(gw, KEY_B, user="alice", model="other")
        assert r.status_code == 429 and "user:alice" in r.json()["error"]["message"]
        assert ask(gw, KEY_B, user="bob", model="other").status_code == 200


def test_concurrency_lease_is_freed_when_the_request_ends(
    mock: MockUpstream, tmp_path: Path
) -> None:
    mock.behave("up-chat", Behavior(delay_s=0.5))
    with gateway(mock, tmp_path, "keys_defaults: {limits: {concurrent: 1}}\n") as gw:
        results: list[int] = []
        slow = threading.Thread(target=lambda: results.append(ask(gw).status_code))
        slow.start()
        time.sleep(0.2)
        refused = ask(gw)
        assert refused.status_code == 429 and "concurrent" in refused.json()["error"]["message"]
        slow.join()
        time.sleep(0.1)
        mock.behaviors.clear()
        assert results == [200] and ask(gw).status_code == 200


def test_a_failed_request_releases_its_reservation(mock: MockUpstream, tmp_path: Path) -> None:
    """An upstream 500 used no tokens: its reservation is given back."""
    away_from_a_minute_boundary()
    mock.behave("up-chat", Behavior(status=500, error={"error": {"message": "boom"}}))
    with gateway(
        mock,
        tmp_path,
        "keys_defaults: {limits: {tpm: 1100}}\nlimits: {reserve_output_tokens: 1000}\n",
    ) as gw:
        for _ in range(3):
            assert ask(gw).status_code == 500
            time.sleep(0.1)
        mock.behaviors.clear()
        assert ask(gw).status_code == 200


def test_budget_alerts_log_count_and_call_the_webhook(mock: MockUpstream, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """$1 a token, a $40 day: the first request (9 + 8 reserved) reaches 42%, the second
    (settled 17 + 17 reserved) 85%: the 0.8 alert fires once."""
    import logging

    extra = (f"teams:\n  search: {{budgets: [{{usd: 40, period: day}}]}}\n"
             f"limits: {{reserve_output_tokens: 8, alert_at: [0.8], "
             f"alert_webhook: '{mock.base_url}/hook'}}\n")  # fmt: skip
    with caplog.at_level(logging.WARNING, "gateway.limits"), gateway(mock, tmp_path, extra) as gw:
        for _ in range(3):
            ask(gw, max_tokens=8)
            time.sleep(0.2)
        ready = httpx.get(gw.base_url + "/readyz").json()
        time.sleep(0.3)
    alerts = [r for r in caplog.records if r.getMessage().startswith("budget alert")]
    assert len(alerts) == 1 and "team:search budget:day" in alerts[0].getMessage()
    assert ready["limits"] == {"store": "embedded", "enforcing": "ok", "on_error": "closed"}
    posted = [r.body for r in mock.requests if r.path == "/hook"]
    assert posted == [{"scope": "team:search", "budget": "budget:day", "share": 0.8}]


def test_cached_input_tokens_count_at_their_weight() -> None:
    from gateway.context import RequestContext
    from gateway.limits.stage import actual_usage
    from gateway.telemetry.cost import TokenUse

    ctx = RequestContext("r", "POST", "/v1/chat/completions")
    ctx.tokens = TokenUse(input=1000, output=100, cached_input=800)
    assert actual_usage(ctx, 1.0) == (1100, 0.0)
    assert actual_usage(ctx, 0.25) == (1000 - 800 * 0.75 + 100, 0.0)


def test_a_reload_keeps_the_store_and_its_counts(mock: MockUpstream, tmp_path: Path) -> None:
    """Changing on_error or the limits' settings reloads onto the same open store (LMDB
    takes one environment a file and process), so the minute's count carries on."""
    away_from_a_minute_boundary()
    with gateway(mock, tmp_path, "keys_defaults: {limits: {rpm: 2}}\n") as gw:
        assert ask(gw).status_code == 200
        path = tmp_path / "policy.yaml"
        path.write_text(path.read_text() + "limits: {lease_s: 30}\nstore: {on_error: open}\n")
        assert gw.app.state.reloader.reload_from_thread("test")
        assert ask(gw).status_code == 200
        assert ask(gw).status_code == 429  # the count survived the reload
