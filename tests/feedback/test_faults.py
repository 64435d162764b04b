"""Feedback when the request log is held by another process: values are spooled and
replayed (none lost), and a lookup that cannot reach the log is a 503, not a 404."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx

from benchmarks.mock_upstream import MockUpstream
from gateway.app import Settings
from gateway.feedback import Feedback
from gateway.policy.models import TelemetryConfig
from gateway.telemetry.duckdb_sink import DuckDBSink
from tests.conftest import GatewayServer
from tests.prompts.conftest import PolicyDir


@contextmanager
def locked(db: Path) -> Iterator[None]:
    """Another process holds DuckDB's lock on `db`."""
    duckdb.connect(str(db)).close()
    code = f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('locked', flush=True); time.sleep(60)"
    locker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        yield
    finally:
        locker.kill()
        locker.wait()
        if locker.stdout is not None:
            locker.stdout.close()


def test_feedback_is_spooled_while_the_log_is_locked_and_replayed(tmp_path: Path) -> None:
    db = tmp_path / "requests.duckdb"
    sink = DuckDBSink(db, TelemetryConfig(flush_interval_s=0.1), lock_wait_s=0.2)
    with locked(db):
        for i in range(3):
            sink.record_feedback(
                Feedback(f"r{i}", "resolved", 1.0, None, None).row(f"r{i}", "k")[1]
            )
        deadline = time.monotonic() + 5
        while sink.spooled < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    sink.record_feedback(Feedback("r0", "resolved", 0.0, None, "no").row("r0", "k")[1])
    asyncio.run(sink.aclose())
    con = duckdb.connect(str(db), read_only=True)
    try:
        latest = con.execute(
            "SELECT request_id, value FROM feedback ORDER BY request_id"
        ).fetchall()
        history = con.execute("SELECT count(*) FROM feedback_history").fetchone()
    finally:
        con.close()
    assert latest == [("r0", 0.0), ("r1", 1.0), ("r2", 1.0)]
    assert history == (4,)


def test_a_lookup_the_log_cannot_answer_is_a_503(policy_dir: PolicyDir, mock: MockUpstream,
                                                 tmp_path: Path) -> None:  # fmt: skip
    root = policy_dir()
    db = tmp_path / "requests.duckdb"
    with GatewayServer(Settings(policy_path=str(root), watch_policy=False)) as gw, locked(db):
        r = httpx.post(gw.v1 + "/feedback", timeout=10,
                       json={"request_id": "older", "metric": "resolved", "value": True})  # fmt: skip
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"]
