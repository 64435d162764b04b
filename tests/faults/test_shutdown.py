"""Shutdown with work in flight: at the drain deadline a stream that never finishes gets
the `server_shutting_down` error event and a proper end, a whole request waiting on its
upstream gets a 503 with that code, and their rows say so (not `client_disconnected`)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import orjson

from gateway.app import Settings
from tests.conftest import GatewayServer
from tests.faults.conftest import CHAT, fault_policy, request_rows
from tests.faults.raw_upstream import RawUpstream, sse_answer

CHUNK = orjson.dumps({"id": "c", "model": "up", "choices": [
    {"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]})  # fmt: skip


def never_ending(request: bytes, conn: socket.socket) -> None:
    """A stream's first chunk then silence; a whole request: silence."""
    if b'"stream":true' in request:
        sse_answer([b"data: " + CHUNK + b"\n\n"], end=False)(request, conn)
    time.sleep(15)


def test_drain_deadline_ends_streams_and_requests_with_a_reason(tmp_path: Path) -> None:
    results: dict[str, object] = {}
    with RawUpstream(never_ending) as up:
        policy = tmp_path / "policy.yaml"
        policy.write_text(fault_policy(up, tmp_path / "log" / "requests.duckdb",
                                       "server:\n  drain_timeout_s: 1\n"))  # fmt: skip
        server = GatewayServer(Settings(policy_path=str(policy), watch_policy=False))
        server.__enter__()

        def stream() -> None:
            body = {**CHAT, "stream": True}
            with (
                httpx.Client(base_url=server.base_url, timeout=30) as client,
                client.stream("POST", "/v1/chat/completions", json=body) as r,
            ):
                results["stream"] = [line for line in r.iter_lines() if line]

        def whole() -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                r = client.post("/v1/chat/completions", json=CHAT)
                results["whole"] = (r.status_code, r.json())

        threads = [threading.Thread(target=stream), threading.Thread(target=whole)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        server.__exit__(None, None, None)  # what SIGTERM does: uvicorn's graceful shutdown
        for thread in threads:
            thread.join(10)
        assert time.monotonic() - started < 4  # the drain deadline, not uvicorn's 5 s cut
    lines = results["stream"]
    assert isinstance(lines, list) and lines[0].startswith("data: ")
    assert orjson.loads(lines[-1][6:])["error"]["code"] == "server_shutting_down"
    assert results["whole"] == (503, {"error": {
        "message": "The gateway is shutting down.", "type": "api_error", "param": None,
        "code": "server_shutting_down"}})  # fmt: skip
    rows = request_rows(tmp_path, "stream, status, error_type, client_disconnected")
    assert sorted(rows) == [(False, 503, "server_shutting_down", False),
                            (True, 200, "server_shutting_down", False)]  # fmt: skip
