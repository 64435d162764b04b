"""What a client can make the gateway keep: metric series from made-up model names, rows
and metrics from health probes, key ids on an open /metrics."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import orjson

from gateway.auth import KeyChecker
from gateway.policy.models import AuthConfig
from tests.faults.conftest import CHAT, gateway_on, request_rows
from tests.faults.raw_upstream import RawUpstream, json_answer

OK = orjson.dumps({"id": "c", "object": "chat.completion", "model": "up",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"},
                                "finish_reason": "stop"}]})  # fmt: skip


def scrape_until(client: httpx.Client, needle: str) -> str:
    """Metrics are recorded off the request path: poll until the last request shows."""
    deadline = time.monotonic() + 5
    while needle not in (text := client.get("/metrics").text) and time.monotonic() < deadline:
        time.sleep(0.05)
    return text


def test_made_up_model_names_do_not_grow_metrics(tmp_path: Path) -> None:
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path) as (_, client):
        client.post("/v1/chat/completions", json=CHAT)
        for i in range(300):
            r = client.post("/v1/chat/completions", json={**CHAT, "model": f"nope-{i}"})
            assert r.status_code == 404
        text = scrape_until(client, 'gen_ai_request_model="other"')
    assert "nope-" not in text
    assert 'gen_ai_request_model="other"' in text and 'gen_ai_request_model="m"' in text
    assert len(text) < 200_000


def test_probes_leave_no_rows_and_no_request_metrics(tmp_path: Path) -> None:
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path) as (_, client):
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
            assert client.get("/metrics").status_code == 200
        client.post("/v1/chat/completions", json=CHAT)
        text = scrape_until(client, "gateway_requests_total{")
    assert request_rows(tmp_path, "path") == [("/v1/chat/completions",)]
    requests = [line for line in text.splitlines() if line.startswith("gateway_requests_total")]
    assert len(requests) == 1 and requests[0].endswith(" 1.0")
    assert 'gateway_probes_total{http_response_status_code="200",url_path="/healthz"} 5.0' in text


def test_metrics_key() -> None:
    key = "metrics-scrape-key"
    checker = KeyChecker(AuthConfig(metrics_key_sha256=hashlib.sha256(key.encode()).hexdigest()))
    checker.authorize_metrics({"authorization": f"Bearer {key}"}, "10.0.0.5")
    for headers in ({}, {"authorization": "Bearer wrong"}):
        for client in ("127.0.0.1", "10.0.0.5"):
            try:
                checker.authorize_metrics(headers, client)
            except Exception as exc:
                assert getattr(exc, "status", None) == 401
            else:
                raise AssertionError("accepted without the metrics key")
    open_checker = KeyChecker(AuthConfig())
    open_checker.authorize_metrics({}, "127.0.0.1")  # a local Prometheus, no key
    open_checker.authorize_metrics({}, "::1")
    try:
        open_checker.authorize_metrics({}, "10.0.0.5")
    except Exception as exc:
        assert getattr(exc, "status", None) == 403
    else:
        raise AssertionError("a remote scrape without a metrics key was answered")


def test_metrics_key_over_http(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"scrape").hexdigest()
    extra = f"auth:\n  metrics_key_sha256: {digest}\n"
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path, extra) as (_, client):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"authorization": "Bearer scrape"}).status_code == 200


def test_token_encodings_are_loaded_at_startup_not_on_a_request(tmp_path: Path) -> None:
    """The first answer without upstream usage needs tiktoken: loaded in the lifespan, on
    a thread, so no request stalls the event loop on it."""
    from gateway.telemetry import tokens

    tokens.encoding.cache_clear()
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path):
        assert tokens.encoding.cache_info().currsize == len(tokens.SHIPPED)
