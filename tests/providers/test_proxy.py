"""Egress through a real HTTP proxy on loopback: a CONNECT tunnel to a TLS upstream (the
proxy sees only host:port), absolute-form forwarding to a plain one (end to end, through
the gateway), Basic credentials, and HTTPS_PROXY / NO_PROXY from the environment."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from benchmarks.mock_upstream import MockUpstream
from gateway.app import Settings
from gateway.providers.proxy import Proxy, proxy_for
from gateway.providers.transport import HttpTransport, parse_url
from tests.conftest import GatewayServer
from tests.providers.connect_proxy import ConnectProxy
from tests.providers.test_http1 import FAST, Server, keep_answering_any


async def test_a_tls_upstream_through_a_connect_tunnel(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:  # fmt: skip
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    tcp = await asyncio.start_server(Server(keep_answering_any).serve, "127.0.0.1", 0,
                                     ssl=server_context)  # fmt: skip
    url = f"https://localhost:{tcp.sockets[0].getsockname()[1]}/v1/chat"
    try:
        async with ConnectProxy(("egress", "s3cret")) as proxy:
            good = f"http://egress:s3cret@127.0.0.1:{proxy.port}"
            transport = HttpTransport(1, proxy_url=good)
            for _ in range(2):  # the tunnel's connection is kept alive
                response = await transport.send("POST", parse_url(url), b"{}", {}, FAST,
                                                buffered=True)  # fmt: skip
                assert response.status_code == 200 and response.content == b"{}"
            await transport.aclose()
            assert proxy.tunnels == [f"localhost:{url.split(':')[2].split('/')[0]}"]
            wrong = HttpTransport(1, proxy_url=f"http://egress:nope@127.0.0.1:{proxy.port}")
            with pytest.raises(httpx.ProxyError, match="407"):
                await wrong.send("POST", parse_url(url), b"{}", {}, FAST, buffered=True)
            await wrong.aclose()
            assert proxy.refused == 1
    finally:
        tcp.close()


def test_through_the_gateway_to_a_plain_upstream(tmp_path: Path, mock: MockUpstream) -> None:
    async def run() -> None:
        async with ConnectProxy(("egress", "s3cret")) as proxy:
            policy = tmp_path / "p.yaml"
            policy.write_text(f"""\
version: 1
providers:
  up:
    type: openai
    base_url: {mock.base_url}/v1
    proxy_url: http://egress:${{PROXY_PASSWORD:-s3cret}}@127.0.0.1:{proxy.port}
models:
  m: {{provider: up, upstream_model: x}}
""")
            with GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as gw:
                async with httpx.AsyncClient(base_url=gw.base_url) as client:
                    r = await client.post("/v1/chat/completions", json={
                        "model": "m", "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
            assert r.status_code == 200, r.text
            assert proxy.forwarded == [f"{mock.base_url}/v1/chat/completions"]
            assert "proxy-authorization" not in mock.requests[-1].headers

    asyncio.run(run())


def test_the_environment_s_proxy_and_its_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.corp.example")
    assert proxy_for("https", "api.openai.com", None, True) == Proxy("proxy.internal", 3128)
    assert proxy_for("https", "llm.corp.example", None, True) is None
    assert proxy_for("https", "api.openai.com", None, False) is None  # not asked for
    assert proxy_for("http", "api.openai.com", None, True) is None  # no HTTP_PROXY set
    fixed = proxy_for("https", "x", "http://u:p%40ss@10.0.0.1:8080", False)
    assert fixed == Proxy("10.0.0.1", 8080, "Basic dTpwQHNz")  # u:p@ss
