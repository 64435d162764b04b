"""A misbehaving disk under the request log: the DuckDB file and its spool both
unwritable for a while (as root, permissions do not bind: a directory in each file's
place fails every open as a read-only or vanished volume would). Every row recorded in
the window lands once the path is writable again; past `buffer_rows` the oldest are
dropped and counted."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from gateway.policy.models import TelemetryConfig
from gateway.telemetry.duckdb_sink import DuckDBSink
from tests.telemetry.test_duckdb_sink import ctx, rows


def break_disk(db: Path) -> None:
    for path in (db, db.with_name(db.name + ".spool")):
        path.mkdir(parents=True)


def mend_disk(db: Path) -> None:
    for path in (db, db.with_name(db.name + ".spool")):
        shutil.rmtree(path)


def wait_for(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_rows_wait_in_memory_and_all_land_when_the_disk_is_back(tmp_path: Path) -> None:
    db = tmp_path / "log" / "requests.duckdb"
    sink = DuckDBSink(db, TelemetryConfig(flush_interval_s=0.05), lock_wait_s=0.05)
    sink.record(ctx("before"))
    wait_for(lambda: sink.written == 1)
    db.unlink()
    break_disk(db)
    for i in range(200):
        sink.record(ctx(f"during-{i}"))
    wait_for(lambda: sink.held == 200)
    time.sleep(0.3)  # several failed flushes: nothing dropped, nothing duplicated
    assert sink.lost == 0 and sink.held == 200
    mend_disk(db)
    sink.record(ctx("after"))
    asyncio.run(sink.aclose())
    ids = [str(r[0]) for r in rows(db, "SELECT request_id FROM requests")]
    assert sorted(ids) == sorted(["after", *(f"during-{i}" for i in range(200))])
    assert sink.lost == 0


def test_overflow_past_the_bound_is_counted(tmp_path: Path) -> None:
    db = tmp_path / "requests.duckdb"
    break_disk(db)
    config = TelemetryConfig(flush_interval_s=0.05, buffer_rows=100)
    sink = DuckDBSink(db, config, lock_wait_s=0.05)
    for i in range(150):
        sink.record(ctx(f"r-{i}"))
    wait_for(lambda: sink.lost == 50)
    mend_disk(db)
    asyncio.run(sink.aclose())
    ids = {r[0] for r in rows(db, "SELECT request_id FROM requests")}
    assert ids == {f"r-{i}" for i in range(50, 150)}  # the newest 100


def test_still_broken_at_shutdown_counts_what_is_lost(tmp_path: Path) -> None:
    db = tmp_path / "requests.duckdb"
    break_disk(db)
    sink = DuckDBSink(db, TelemetryConfig(flush_interval_s=0.05), lock_wait_s=0.05)
    for i in range(7):
        sink.record(ctx(f"r-{i}"))
    asyncio.run(sink.aclose())
    assert sink.lost == 7 and sink.written == 0
