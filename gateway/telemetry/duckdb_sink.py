"""`telemetry.duckdb`: one row per request in a DuckDB file, written off the event loop.

The request path only puts a tuple on a queue. One writer thread (DuckDB allows one
writer per file) drains it every `flush_interval_s`, opening the file only while it
writes, so `gateway stats` and other readers can open it in between. When DuckDB fails
(locked, read-only, disk full) the batch goes to `<file>.spool` as JSON lines and is
replayed with the next successful flush. When the spool cannot be written either, rows
wait in memory (at most `telemetry.buffer_rows`; past that the oldest are dropped,
counted in `lost` and logged) and every flush interval tries again, so a directory that
becomes writable again gets every row. `aclose` flushes what is queued and held; what is
lost: the last flush interval on a hard kill, the overflow past `buffer_rows`, and rows
still held at shutdown when neither file can be written then (counted and logged).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson

from gateway.context import RequestContext
from gateway.policy.models import TelemetryConfig
from gateway.telemetry import drain
from gateway.telemetry.rows import Row, attempt_rows, content_rows, request_row
from gateway.telemetry.schema import (
    ATTEMPT_COLUMNS,
    CONTENT_COLUMNS,
    FEEDBACK_COLUMNS,
    REQUEST_COLUMNS,
    migrate,
)

log = logging.getLogger("gateway.telemetry")
# a request (None: feedback alone), its attempts, its captured content, feedback rows
Item = tuple[Row | None, list[Row], list[Row], list[Row]]
LOCK_RETRY_S = 0.05
RETENTION_EVERY_S = 60.0


class DuckDBSink:
    def __init__(
        self, path: str | Path, config: TelemetryConfig | None = None, lock_wait_s: float = 5.0
    ) -> None:
        self.path = Path(path)
        self.config = config or TelemetryConfig()
        self.lock_wait_s = lock_wait_s
        self.spool = self.path.with_name(self.path.name + ".spool")
        self.flush_interval_s = self.config.flush_interval_s
        self._retained_at = 0.0
        self.written = 0
        self.spooled = 0
        self.lost = 0
        self._held: list[Item] = []  # neither file writable: rows wait here, bounded
        self._unavailable_since: float | None = None
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="duckdb-writer", daemon=True)
        self._thread.start()

    def record(self, ctx: RequestContext) -> None:
        try:
            self._queue.put((request_row(ctx), attempt_rows(ctx), content_rows(ctx), []))
        except Exception:  # telemetry never raises into a request
            log.exception("could not queue a request-log row")

    def record_feedback(self, row: Row) -> None:
        """A feedback row (FEEDBACK_COLUMNS), written with the next flush."""
        self._queue.put((None, [], [], [row]))

    def query(self, sql: str, params: list[Any], wait_s: float) -> list[tuple[Any, ...]]:
        """Read the request log from this process (a blocking call: run it in a thread);
        [] while it does not exist yet."""
        if not self.path.exists():
            return []
        con = connect(self.path, wait_s=wait_s)
        try:
            migrate(con)
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def owners(self, ident: str, wait_s: float) -> tuple[tuple[str, str | None], ...]:
        """(request id, key id) of logged requests with this request id or response id,
        oldest first (a blocking call: run it in a thread)."""
        if not self.path.exists():
            return ()
        con = connect(self.path, wait_s=wait_s)
        try:
            migrate(con)
            found = con.execute(
                "SELECT request_id, key_id FROM requests WHERE request_id = ? OR "
                "response_id = ? ORDER BY started_at",
                [ident, ident],
            ).fetchall()
        finally:
            con.close()
        return tuple((str(r), k) for r, k in found)

    async def aclose(self) -> None:
        self._closing.set()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    # ------------------------------------------------------------ writer thread

    def _run(self) -> None:
        running = True
        while running:
            # rows, or the interval alone: spooled rows are retried even when idle
            items = drain(self._queue, self.flush_interval_s, self.flush_interval_s, self._closing)
            running = None not in items
            batch = [item for item in items if item is not None]
            try:
                self._flush(batch)
            except Exception:  # the writer outlives any one bad batch
                log.exception("request log flush failed; %d rows held for retry", len(batch))
                self._hold(self._held + batch)
        if self._held:
            self.lost += len(self._held)
            log.error("request log and its spool unwritable at shutdown: %d rows lost",
                      len(self._held), extra={"fields": {"path": str(self.path)}})  # fmt: skip

    def _flush(self, batch: list[Item]) -> None:
        batch = self._held + batch  # held rows stay held until they are written
        try:
            pending = self._read_spool()
        except (OSError, ValueError):
            pending = []  # unreadable now: it stays on disk for a later flush
        if not batch and not pending:
            return
        try:
            self._write(pending + batch)
        except (duckdb.Error, OSError) as exc:
            if self._unavailable_since is None:
                self._unavailable_since = time.monotonic()
                log.warning("request log unavailable (%s); spooling rows", exc,
                            extra={"fields": {"path": str(self.path)}})  # fmt: skip
            self._append_spool(batch)
            return
        self._held = []
        if pending:
            self.spool.unlink(missing_ok=True)
            log.info("replayed %d spooled rows into the request log", len(pending))
        if self._unavailable_since is not None:
            log.info("request log writable again after %.1f s", time.monotonic() -
                     self._unavailable_since)  # fmt: skip
            self._unavailable_since = None

    def _write(self, items: list[Item]) -> None:
        requests = [item[0] for item in items if item[0] is not None]
        attempts = [row for item in items for row in item[1]]
        contents = [row for item in items for row in item[2]]
        feedback = [row for item in items for row in item[3]]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.path, wait_s=self.lock_wait_s)
        try:
            con.execute("SET wal_autocheckpoint = '256MB'")  # fewer, larger checkpoints
            migrate(con)
            con.execute("BEGIN")
            insert(con, "requests", REQUEST_COLUMNS, requests)
            insert(con, "attempts", ATTEMPT_COLUMNS, attempts)
            insert(con, "contents", CONTENT_COLUMNS, contents)
            insert_feedback(con, feedback)
            con.execute("COMMIT")
            if time.monotonic() - self._retained_at > RETENTION_EVERY_S:
                self._retained_at = time.monotonic()
                apply_retention(con, self.config, self.path)
        finally:
            con.close()
        self.written += len(requests)

    def _read_spool(self) -> list[Item]:
        if not self.spool.exists():
            return []
        items: list[Item] = []
        for line in self.spool.read_bytes().splitlines():
            if line:
                row, attempts, contents, *rest = orjson.loads(line)
                feedback = [tuple(f) for f in rest[0]] if rest else []
                items.append((tuple(row) if row is not None else None,
                              [tuple(a) for a in attempts], [tuple(c) for c in contents],
                              feedback))  # fmt: skip
        return items

    def _append_spool(self, batch: list[Item]) -> None:
        if not batch:
            return
        try:
            with self.spool.open("ab") as f:
                f.write(b"".join(orjson.dumps(item) + b"\n" for item in batch))
            self.spooled += len(batch)
            self._held = []
        except OSError as exc:
            if not self._held:
                log.warning("request log spool unwritable too (%s); holding rows in memory "
                            "(at most %d)", exc, self.config.buffer_rows)  # fmt: skip
            self._hold(batch)

    @property
    def held(self) -> int:
        """Rows waiting in memory for the request log or its spool to be writable."""
        return len(self._held)

    def _hold(self, batch: list[Item]) -> None:
        """Keep these rows (the held ones first) for the next try; past `buffer_rows`
        the oldest go (counted)."""
        self._held = batch
        over = len(self._held) - self.config.buffer_rows
        if over > 0:
            del self._held[:over]
            self.lost += over
            log.error("request log unwritable: %d oldest held rows dropped (%d in all)", over,
                      self.lost, extra={"fields": {"path": str(self.path)}})  # fmt: skip


def insert_feedback(con: duckdb.DuckDBPyConnection, rows: list[Row]) -> None:
    """Every value into `feedback_history`; the latest per request and metric into
    `feedback` (a later value replaces an earlier one)."""
    if not rows:
        return
    marks = ", ".join("?" * len(FEEDBACK_COLUMNS))
    values = [(*row[:6], to_timestamp(row[6]), row[7]) for row in rows]
    con.executemany(f"INSERT INTO feedback_history VALUES ({marks})", values)
    latest = {(row[0], row[1]): row for row in values}  # one per key in one statement
    con.executemany(f"INSERT OR REPLACE INTO feedback VALUES ({marks})", list(latest.values()))


def to_timestamp(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).replace(tzinfo=None)


def apply_retention(con: duckdb.DuckDBPyConnection, config: TelemetryConfig, path: Path) -> None:
    """Drop rows past `retention_days`, contents past `content_retention_days`, and the
    oldest tenth of requests while the file is over `max_size_mb` (DuckDB reuses the
    space freed)."""
    con.execute(
        "DELETE FROM contents WHERE started_at < now()::TIMESTAMP - to_days(?)",
        [config.content_retention_days],
    )
    if config.retention_days is not None:
        drop_before(con, "now()::TIMESTAMP - to_days(?)", [config.retention_days])
    if config.max_size_mb is not None and path.stat().st_size > config.max_size_mb * 1024 * 1024:
        drop_before(con, "(SELECT quantile_disc(started_at, 0.1) FROM requests)", [])


def drop_before(con: duckdb.DuckDBPyConnection, cutoff: str, params: list[Any]) -> None:
    old = f"SELECT request_id FROM requests WHERE started_at < {cutoff}"
    con.execute("BEGIN")
    con.execute(f"DELETE FROM attempts WHERE request_id IN ({old})", params)
    con.execute(f"DELETE FROM contents WHERE request_id IN ({old})", params)
    con.execute(f"DELETE FROM feedback WHERE request_id IN ({old})", params)
    con.execute(f"DELETE FROM feedback_history WHERE request_id IN ({old})", params)
    con.execute(f"DELETE FROM requests WHERE started_at < {cutoff}", params)
    con.execute("COMMIT")


def connect(path: Path, read_only: bool = False, wait_s: float = 5.0) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process holds DuckDB's lock on it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(LOCK_RETRY_S)


NUMERIC = ("INTEGER", "SMALLINT", "TINYINT", "FLOAT")


def insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: tuple[tuple[str, str], ...],
    rows: list[Row],
) -> None:
    """Columnar insert through DuckDB's numpy scan. Numbers travel as float64 arrays (None
    becomes NaN, then NULL again in SQL), flags as bool arrays, text as object arrays."""
    if not rows:
        return
    batch: dict[str, Any] = {}
    select: list[str] = []
    for (name, sql_type), values in zip(columns, zip(*rows, strict=True), strict=True):
        kind = sql_type.split()[0]
        if name == "started_at":
            batch[name] = np.array(values, dtype=np.int64)
            select.append("make_timestamp(started_at)")
        elif kind in NUMERIC:
            batch[name] = np.array(values, dtype=np.float64)
            select.append(f"CASE WHEN isnan({name}) THEN NULL ELSE {name} END")
        elif kind == "BOOLEAN" and None not in values:
            batch[name] = np.array(values, dtype=np.bool_)
            select.append(name)
        else:
            batch[name] = np.array(values, dtype=object)
            select.append(name)
    con.execute(f"INSERT INTO {table} SELECT {', '.join(select)} FROM batch")  # scans `batch`
