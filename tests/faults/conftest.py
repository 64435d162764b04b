"""The fault-injection suite's gateway: one model on a scriptable raw upstream, a real
DuckDB request log, and helpers to read it back after shutdown."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from gateway.app import Settings
from gateway.telemetry.duckdb_sink import connect
from tests.conftest import GatewayServer
from tests.faults.raw_upstream import RawUpstream

UPSTREAM_KEY = "sk-raw-provider-secret-0123456789"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}


def fault_policy(upstream: RawUpstream, db: Path, extra: str = "") -> str:
    return f"""\
version: 1
providers:
  raw:
    type: openai
    base_url: {upstream.base_url}
    api_key: ${{FAULT_UPSTREAM_KEY:-{UPSTREAM_KEY}}}
    timeout_s: 2
    max_response_bytes: 1048576
guardrails:
  secrets: {{type: secrets}}
models:
  m: {{provider: raw, upstream_model: up}}
  guarded: {{provider: raw, upstream_model: up, guardrails: {{output: [secrets]}}}}
telemetry:
  duckdb: {db}
  flush_interval_s: 0.1
{extra}"""


@contextmanager
def gateway_on(
    upstream: RawUpstream, tmp_path: Path, extra: str = ""
) -> Iterator[tuple[GatewayServer, httpx.Client]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(fault_policy(upstream, tmp_path / "log" / "requests.duckdb", extra))
    with (
        GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url, timeout=10) as client,
    ):
        yield gw, client


def request_rows(tmp_path: Path, columns: str) -> list[tuple[object, ...]]:
    """Rows of the request log (read after the gateway has shut down and flushed)."""
    con = connect(tmp_path / "log" / "requests.duckdb", read_only=True)  # waits out a flush
    try:
        return con.execute(f"SELECT {columns} FROM requests ORDER BY started_at").fetchall()
    finally:
        con.close()
