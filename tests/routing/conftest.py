"""Three mock upstreams on loopback (a, b, c), each its own server, and gateways routing
over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from benchmarks.mock_upstream import MockUpstream
from gateway.app import Settings
from tests.conftest import GatewayServer

Mocks = dict[str, MockUpstream]


@pytest.fixture(scope="session")
def mocks() -> Iterator[Mocks]:
    servers = {name: MockUpstream().start() for name in ("a", "b", "c")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(autouse=True)
def _clean_mocks(request: pytest.FixtureRequest) -> None:
    if "mocks" in request.fixturenames:
        for server in request.getfixturevalue("mocks").values():
            server.reset_state()
            server.prefix_cache = False


def providers(mocks: Mocks, timeout_s: float = 2.0) -> str:
    lines = ["providers:"]
    for name, server in mocks.items():
        lines += [f"  {name}:", "    type: openai", f"    base_url: {server.base_url}/v1",
                  f"    timeout_s: {timeout_s}", "    connect_timeout_s: 1"]  # fmt: skip
    lines += ["  claude:", "    type: anthropic", f"    base_url: {mocks['c'].base_url}/v1",
              "    api_key: ${TEST_ANTHROPIC_KEY:-sk-ant-secret}", f"    timeout_s: {timeout_s}",
              "  azure:", "    type: azure", f"    base_url: {mocks['b'].base_url}",
              "    api_key: ${TEST_AZURE_KEY:-az-secret}", "    api_version: 2024-10-21",
              f"    timeout_s: {timeout_s}"]  # fmt: skip
    return "\n".join(lines) + "\n"


@pytest.fixture
def serve(tmp_path: Path, mocks: Mocks) -> Callable[..., object]:
    """`with serve(models_yaml) as (gateway, client)`: a gateway on the three mocks."""

    @contextmanager
    def run(models: str, timeout_s: float = 2.0) -> Iterator[tuple[GatewayServer, httpx.Client]]:
        path = tmp_path / "policy.yaml"
        path.write_text("version: 1\n" + providers(mocks, timeout_s) + "models:\n" + models)
        with (GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
              httpx.Client(base_url=gw.base_url, timeout=30) as client):  # fmt: skip
            yield gw, client

    return run


def calls(mocks: Mocks) -> dict[str, int]:
    return {name: len(server.requests) for name, server in mocks.items()}
