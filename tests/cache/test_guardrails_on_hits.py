"""A cached answer is guarded by today's policy: entries hold what the upstream said
(before output guardrails), the output chain runs on every hit, and reversible
placeholders are restored per request (each client gets its own values back)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from tests.cache.conftest import cache_policy
from tests.conftest import GatewayServer

GUARDRAILS = """\
guardrails:
  pii: {type: pii, action: redact, reversible: true}
  words: {type: deny_list, keywords: [banana], action: %s}
"""


def policy(mock: MockUpstream, action: str) -> str:
    return cache_policy(mock.base_url, "  default: {type: exact}\n",
                        {"gpt": ("up-gpt", "default"), "rev": ("up-rev", "default")},
                        GUARDRAILS % action,
                        {"gpt": "{output: [words]}", "rev": "{input: [pii]}"})  # fmt: skip


@pytest.fixture
def gw(tmp_path: Path, mock: MockUpstream) -> Iterator[tuple[GatewayServer, Path]]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy(mock, "log"))
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as server:
        yield server, path


def ask(server: GatewayServer, text: str, model: str = "gpt", stream: bool = False
        ) -> httpx.Response:  # fmt: skip
    body = {"model": model, "messages": [{"role": "user", "content": text}],
            "temperature": 0, "stream": stream}  # fmt: skip
    response = httpx.post(server.v1 + "/chat/completions", json=body, timeout=10)
    time.sleep(0.15)
    return response


def test_todays_output_guardrails_run_on_a_hit(gw: tuple[GatewayServer, Path],
                                               mock: MockUpstream) -> None:  # fmt: skip
    server, path = gw
    mock.behave("up-gpt", Behavior(text="I like banana bread."))
    first = ask(server, "What do you like?")
    assert first.status_code == 200 and "banana" in first.text  # action log: passes
    path.write_text(policy(mock, "block"))  # the cache's own settings are unchanged
    assert server.app.state.reloader.reload_from_thread("test")
    blocked = ask(server, "What do you like?")
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "guardrail_words"
    assert blocked.headers["x-gateway-cache"] == "hit"
    streamed = ask(server, "What do you like?", stream=True)
    assert streamed.headers["x-gateway-cache"] == "hit"
    assert "guardrail_words" in streamed.text and "banana" not in streamed.text
    path.write_text(policy(mock, "redact"))
    assert server.app.state.reloader.reload_from_thread("test")
    redacted = ask(server, "What do you like?")
    assert redacted.status_code == 200 and "banana" not in redacted.text
    assert len(mock.requests) == 1  # every answer after the first came from the cache


def test_reversible_placeholders_are_restored_per_request(gw: tuple[GatewayServer, Path],
                                                          mock: MockUpstream) -> None:  # fmt: skip
    server, _ = gw
    mock.behave("up-rev", Behavior(text="I will write to <EMAIL_ADDRESS_1> today."))
    jane = ask(server, "Please email me at jane.doe@example.com", model="rev")
    assert (
        mock.requests[-1].body["messages"][0]["content"] == "Please email me at <EMAIL_ADDRESS_1>"
    )
    john = ask(server, "Please email me at john.roe@example.org", model="rev")
    assert john.headers["x-gateway-cache"] == "hit"  # the same request once redacted
    assert jane.json()["choices"][0]["message"]["content"] == (
        "I will write to jane.doe@example.com today.")  # fmt: skip
    assert john.json()["choices"][0]["message"]["content"] == (
        "I will write to john.roe@example.org today.")  # fmt: skip
    streamed = ask(server, "Please email me at ann@example.net", model="rev", stream=True)
    chunks = [orjson.loads(e[6:]) for e in streamed.text.split("\n\n") if e.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "I will write to ann@example.net today."
    assert len(mock.requests) == 1
