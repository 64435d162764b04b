"""The anthropic provider's `base_url`: with `/v1` (the policy's usual form) or without
(what Anthropic's SDKs and ANTHROPIC_BASE_URL use), both reach `/v1/messages`."""

from __future__ import annotations

from pathlib import Path

import httpx

from benchmarks.mock_upstream import MockUpstream
from gateway.app import Settings
from gateway.providers.anthropic import messages_url
from tests.conftest import GatewayServer


def test_messages_url() -> None:
    assert messages_url("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages"
    assert messages_url("https://api.anthropic.com/v1") == "https://api.anthropic.com/v1/messages"
    assert messages_url("https://proxy.example/anthropic") == (
        "https://proxy.example/anthropic/v1/messages"
    )


def test_an_sdk_style_base_url_reaches_the_messages_endpoint(tmp_path: Path,
                                                              mock: MockUpstream) -> None:  # fmt: skip
    path = tmp_path / "policy.yaml"
    path.write_text(f"""\
version: 1
providers:
  claude: {{type: anthropic, base_url: '{mock.base_url}', api_key: '${{TEST_ANTHROPIC_KEY:-sk-ant-x}}'}}
models:
  claude: {{provider: claude, upstream_model: claude-up}}
""")
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw:
        r = httpx.post(gw.v1 + "/chat/completions",
                       json={"model": "claude", "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert mock.requests[-1].path == "/v1/messages"
