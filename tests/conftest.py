"""Shared fixtures: a mock upstream and real gateways, each on its own loopback socket."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import uvicorn

from benchmarks.mock_upstream import MockUpstream, free_port
from gateway.app import Settings, create_app
from gateway.server import GatewayHttpProtocol

POLICY = """\
version: 1
providers:
  mock:
    type: openai
    base_url: {mock}/v1
    api_key: ${{TEST_UPSTREAM_KEY:-sk-upstream-secret}}
    timeout_s: 1
  dead:
    type: openai
    base_url: http://127.0.0.1:{dead_port}/v1
    connect_timeout_s: 1
  azure:
    type: azure
    base_url: {mock}
    api_key: ${{TEST_AZURE_KEY:-az-secret}}
    api_version: 2024-10-21
    timeout_s: 1
  claude:
    type: anthropic
    base_url: {mock}/v1
    api_key: ${{TEST_ANTHROPIC_KEY:-sk-ant-secret}}
    timeout_s: 1
models:
{models}
"""


def model_lines(
    models: dict[str, tuple[str, str]],
    fallbacks: dict[str, list[str]],
    guardrails: dict[str, str] | None = None,
    caches: dict[str, str] | None = None,
) -> str:
    """YAML for `models:`; `guardrails` maps a model to its inline chains, e.g.
    `{input: [pii], output: [secrets]}`; `caches` a model to its cache's name."""
    lines = []
    for name, (provider, upstream) in models.items():
        lines += [f"  {name}:", f"    provider: {provider}", f"    upstream_model: {upstream}"]
        if name in fallbacks:
            lines.append(f"    fallbacks: [{', '.join(fallbacks[name])}]")
        if guardrails and name in guardrails:
            lines.append(f"    guardrails: {guardrails[name]}")
        if caches and name in caches:
            lines.append(f"    cache: {caches[name]}")
    return "\n".join(lines)


DEFAULT_MODELS = {
    "gpt": ("mock", "up-gpt"),
    "azure-gpt": ("azure", "my-deployment"),
    "claude": ("claude", "claude-up"),
    "dead": ("dead", "nothing"),
}


class GatewayServer:
    """The real app on uvicorn in a background thread, on a free loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=5,
            http=GatewayHttpProtocol,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"


def wait_until_ready(proc: subprocess.Popen[Any], base: str, timeout_s: float) -> None:
    """Poll `base`/readyz until the gateway process answers 200 (it must not exit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, f"the gateway exited ({proc.returncode})"
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.1)


@contextmanager
def gateway_process(policy: Path, log: Path) -> Iterator[str]:
    """`gateway serve` in a process of its own on `policy`; yields its base URL."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--policy",
             str(policy), "--no-access-log"], stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, base, 30)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def wait_rows(db: Path, sql: str, want: int = 1, timeout_s: float = 5) -> list[tuple[Any, ...]]:
    """`sql` on the request log once it returns `want` rows (the writer flushes on its
    own schedule; the file may be busy meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            con = duckdb.connect(str(db), read_only=True)
            try:
                found = con.execute(sql).fetchall()
            finally:
                con.close()
            if len(found) >= want:
                return found
        except duckdb.Error:
            pass
        assert time.monotonic() < deadline, f"wanted {want} rows from {db}"
        time.sleep(0.1)


@contextmanager
def serving(policy: Path, timeout: float = 10) -> Iterator[httpx.Client]:
    """A gateway on `policy` (no file watching) and a client for it."""
    with (
        GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as server,
        httpx.Client(base_url=server.base_url, timeout=timeout) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def mock() -> Iterator[MockUpstream]:
    upstream = MockUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture(autouse=True)
def _clean_mock(request: pytest.FixtureRequest) -> None:
    if "mock" in request.fixturenames:
        request.getfixturevalue("mock").reset_state()


PolicyWriter = Callable[..., Path]


@pytest.fixture
def write_policy(tmp_path: Path, mock: MockUpstream) -> PolicyWriter:
    def write(
        models: dict[str, tuple[str, str]] | None = None,
        fallbacks: dict[str, list[str]] | None = None,
        extra: str = "",
        name: str = "policy.yaml",
        guardrails: dict[str, str] | None = None,
        caches: dict[str, str] | None = None,
    ) -> Path:
        text = (
            POLICY.format(
                mock=mock.base_url,
                dead_port=free_port(),
                models=model_lines(models or DEFAULT_MODELS, fallbacks or {}, guardrails, caches),
            )
            + extra
        )
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream
) -> Iterator[GatewayServer]:
    """A gateway on the default test policy, shared by a module's tests."""
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(
        POLICY.format(
            mock=mock.base_url,
            dead_port=free_port(),
            models=model_lines(DEFAULT_MODELS, {}),
        )
    )
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as server:
        yield server


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=10) as c:
        yield c
