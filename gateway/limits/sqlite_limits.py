"""The `embedded` limit store: SQLite in WAL mode, one file that every worker process on
the machine opens. A step is one `BEGIN IMMEDIATE` transaction (SQLite's write lock makes
it atomic across processes) run on the event loop: it takes tens of microseconds, and
at most `timeout_ms` while another process holds the lock (then the store counts as
unavailable for that request). The clock is the machine's, which every worker shares."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from gateway.limits import Check, Decision, StoreUnavailable

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value REAL NOT NULL, "
    "expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS leases (key TEXT NOT NULL, member TEXT NOT NULL, "
    "expires REAL NOT NULL, PRIMARY KEY (key, member))",
    "CREATE TABLE IF NOT EXISTS reservations (request_id TEXT PRIMARY KEY, data TEXT NOT NULL, "
    "expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS reservations_expires ON reservations (expires)",
)
CLEAN_EVERY = 1000  # steps between deletions of expired counters and reservations


def open_db(path: Path, timeout_s: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    for statement in SCHEMA:
        con.execute(statement)
    return con


class SqliteLimits:
    def __init__(self, path: Path, timeout_s: float, lease_s: float,
                 reservation_ttl_s: float) -> None:  # fmt: skip
        self.path = path
        self.lease_s, self.ttl_s = lease_s, reservation_ttl_s
        try:
            self.con = open_db(path, timeout_s)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {path}: {exc}") from None
        self._steps = 0

    async def reserve(self, request_id: str, checks: list[Check]) -> Decision:
        try:
            return self._reserve(request_id, checks)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {self.path}: {exc}") from None

    def _reserve(self, request_id: str, checks: list[Check]) -> Decision:
        now = time.time()
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            self._sweep(now)
            if con.execute("SELECT 1 FROM reservations WHERE request_id = ?",
                           (request_id,)).fetchone():  # fmt: skip
                con.execute("COMMIT")
                return Decision(True, now)
            keys = [window_key(c, now) for c in checks]
            values = self._values(checks, keys, now)
            for check, current in zip(checks, values, strict=True):
                if (check.kind in ("count", "lease") and current + check.amount > check.limit) or (
                    check.kind in ("tokens", "usd") and current >= check.limit
                ):
                    con.execute("COMMIT")
                    return Decision(False, now, check, [current])
            self._apply(request_id, checks, keys, now)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return Decision(
            True, now, None, [v + c.amount for v, c in zip(values, checks, strict=True)]
        )

    def _values(self, checks: list[Check], keys: list[str], now: float) -> list[float]:
        """Each counter now: the sums in one query, leases one query each."""
        sums = [k for c, k in zip(checks, keys, strict=True) if c.kind != "lease"]
        found: dict[str, float] = {}
        if sums:
            marks = ", ".join("?" * len(sums))
            sql = f"SELECT key, value FROM counters WHERE key IN ({marks}) AND expires >= ?"
            found = dict(self.con.execute(sql, [*sums, now]).fetchall())
        return [self._leases(k, now) if c.kind == "lease" else float(found.get(k, 0.0))
                for c, k in zip(checks, keys, strict=True)]  # fmt: skip

    def _leases(self, key: str, now: float) -> float:
        row = self.con.execute("SELECT count(*) FROM leases WHERE key = ? AND expires >= ?",
                               (key, now)).fetchone()  # fmt: skip
        return float(row[0])

    def _apply(self, request_id: str, checks: list[Check], keys: list[str], now: float) -> None:
        """Reserve every counter: one upsert for the sums, the leases, the reservation."""
        sums = [(k, c.amount, now + c.ttl_s) for c, k in zip(checks, keys, strict=True)
                if c.kind != "lease"]  # fmt: skip
        if sums:
            rows = ", ".join(["(?, ?, ?)"] * len(sums))
            self.con.execute(
                f"INSERT INTO counters VALUES {rows} ON CONFLICT (key) DO UPDATE SET value = "
                "CASE WHEN expires < ? THEN excluded.value ELSE value + excluded.value END, "
                "expires = CASE WHEN expires < ? THEN excluded.expires ELSE expires END",
                [v for row in sums for v in row] + [now, now],
            )  # fmt: skip
        leases = [(k, request_id, now + self.lease_s) for c, k in zip(checks, keys, strict=True)
                  if c.kind == "lease"]  # fmt: skip
        if leases:
            self.con.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", leases)
        reserved = [[c.kind, k, c.amount] for c, k in zip(checks, keys, strict=True)
                    if c.kind != "count"]  # fmt: skip
        self.con.execute("INSERT INTO reservations VALUES (?, ?, ?)",
                         (request_id, json.dumps(reserved), now + self.ttl_s))  # fmt: skip

    def _current(self, check: Check, key: str, now: float) -> float:
        return self._values([check], [key], now)[0]

    def _sweep(self, now: float) -> None:
        """Expired reservations end (their leases with them); now and then, old rows go."""
        self._steps += 1
        if self._steps % CLEAN_EVERY == 0:
            self.con.execute("DELETE FROM counters WHERE expires < ?", (now,))
            self.con.execute("DELETE FROM leases WHERE expires < ?", (now,))
        for request_id, data in self.con.execute(
            "SELECT request_id, data FROM reservations WHERE expires < ? LIMIT 20", (now,)
        ).fetchall():
            for kind, key, _ in json.loads(data):
                if kind == "lease":
                    self.con.execute("DELETE FROM leases WHERE key = ? AND member = ?",
                                     (key, request_id))  # fmt: skip
            self.con.execute("DELETE FROM reservations WHERE request_id = ?", (request_id,))

    async def settle(self, request_id: str, tokens: float, usd: float) -> None:
        try:
            self._settle(request_id, tokens, usd)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {self.path}: {exc}") from None

    def _settle(self, request_id: str, tokens: float, usd: float) -> None:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute("DELETE FROM reservations WHERE request_id = ? RETURNING data",
                              (request_id,)).fetchone()  # fmt: skip
            if row is not None:
                actual = {"tokens": tokens, "usd": usd}
                reserved = json.loads(row[0])
                con.executemany("UPDATE counters SET value = value + ? WHERE key = ?",
                                [(actual[kind] - amount, key) for kind, key, amount in reserved
                                 if kind != "lease"])  # fmt: skip
                con.executemany("DELETE FROM leases WHERE key = ? AND member = ?",
                                [(key, request_id) for kind, key, _ in reserved
                                 if kind == "lease"])  # fmt: skip
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    async def read(self, checks: list[Check]) -> Decision:
        now = time.time()
        try:
            values = [self._current(c, window_key(c, now), now) for c in checks]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite {self.path}: {exc}") from None
        return Decision(True, now, None, values)

    async def aclose(self) -> None:
        self.con.close()


def window_key(check: Check, now: float) -> str:
    if check.window == "minute":
        return f"{check.key}:{int(now // 60)}"
    return f"{check.key}:{check.window}" if check.window else check.key
