"""The in-process model under faults: a client that leaves stops its generation (non-stream
too), a request without max_tokens is bounded, `limits.max_output_tokens` caps every
request, and parameters the model lacks are refused by name."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import Settings
from gateway.errors import UnsupportedParameter
from gateway.providers.local import sampling
from tests.conftest import GatewayServer
from tests.faults.conftest import request_rows
from tests.local.tiny import write_tiny_model

POLICY = """
version: 1
telemetry: {{duckdb: {db}, flush_interval_s: 0.05}}
guardrails:
  cap: {{type: limits, max_output_tokens: 7}}
providers:
  tiny: {{type: onnx, model: {model}, context_length: 4000, max_batch: 2, threads: 1,
          default_max_tokens: 40}}
models:
  tiny-chat: {{provider: tiny, upstream_model: tiny-chat}}
  capped: {{provider: tiny, upstream_model: tiny-chat, guardrails: {{input: [cap]}}}}
"""
CHAT = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, Path]]:
    root = tmp_path_factory.mktemp("tiny-faults")
    write_tiny_model(root / "model", seed=5, context=4096)
    policy = root / "policy.yaml"
    policy.write_text(POLICY.format(model=root / "model", db=root / "log" / "requests.duckdb"))
    with GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as server:
        yield server, root


def test_no_max_tokens_means_the_documented_default(tiny: tuple[GatewayServer, Path]) -> None:
    server, _ = tiny
    body = {**CHAT, "temperature": 1.0, "seed": 3}
    r = httpx.post(server.v1 + "/chat/completions", json=body, timeout=60)
    usage = r.json()["usage"]
    assert usage["completion_tokens"] <= 40
    assert sampling({}, room=4000, default_max_tokens=40).max_tokens == 40
    assert sampling({}, room=10, default_max_tokens=40).max_tokens == 10
    assert sampling({"max_tokens": 100}, room=4000, default_max_tokens=40).max_tokens == 100


def test_limits_cap_requests_that_name_no_limit(tiny: tuple[GatewayServer, Path]) -> None:
    server, _ = tiny
    for body in ({**CHAT, "model": "capped"}, {**CHAT, "model": "capped", "stream": True}):
        r = httpx.post(server.v1 + "/chat/completions", json=body, timeout=60)
        assert r.status_code == 200
        if body.get("stream"):
            chunks = [orjson.loads(line[6:]) for line in r.text.splitlines()
                      if line.startswith("data: {")]  # fmt: skip
            reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
            assert "length" in reasons or "stop" in reasons
        else:
            assert r.json()["usage"]["completion_tokens"] <= 7
    r = httpx.post(server.v1 + "/chat/completions", json={**CHAT, "model": "capped",
                                                          "max_tokens": 8}, timeout=60)  # fmt: skip
    assert r.status_code == 400  # asking for more than the limit is still refused


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
    ],
)
def test_what_the_model_lacks_is_refused_by_name(
    tiny: tuple[GatewayServer, Path], patch: dict[str, Any], param: str
) -> None:
    server, _ = tiny
    for stream in (False, True):
        r = httpx.post(server.v1 + "/chat/completions", json={**CHAT, **patch, "stream": stream})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "unsupported_parameter"
        assert r.json()["error"]["param"] == param
    with pytest.raises(UnsupportedParameter):
        sampling(patch, room=100, default_max_tokens=10)
    sampling({"tools": [], "response_format": {"type": "text"}}, 100, 10)  # harmless: accepted


def test_client_leaving_stops_a_whole_generation(tiny: tuple[GatewayServer, Path]) -> None:
    server, root = tiny
    scheduler = server.app.state.reloader.state.runtime.providers["tiny"].chat.scheduler
    body = orjson.dumps({**CHAT, "max_tokens": 3900, "temperature": 1.0, "stop": ["\x00zz"]})
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: "
                 b"application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    deadline = time.monotonic() + 5
    while not scheduler.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.active, "the generation did not start"
    sock.close()
    deadline = time.monotonic() + 3
    while scheduler.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not scheduler.active, "the generation went on after the client left"
    time.sleep(0.3)  # the row is flushed every 0.05 s
    rows = request_rows(root, "status, client_disconnected, error_type")
    assert (499, True, "client_disconnected") in rows
