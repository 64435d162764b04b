"""The embedded record store: keys, teams and the audit log in one SQLite file (WAL
mode: every worker process reads and writes it), `gateway-state.db`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.keys import Kind, RecordUnavailable

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id TEXT NOT NULL, "
    "data TEXT NOT NULL, PRIMARY KEY (kind, id))",
    "CREATE TABLE IF NOT EXISTS key_hashes (sha256 TEXT PRIMARY KEY, id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit (at TEXT NOT NULL, actor TEXT, action TEXT NOT NULL, "
    "kind TEXT NOT NULL, id TEXT NOT NULL, before TEXT, after TEXT)",
)


def open_db(path: Path, timeout_s: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    return con


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back if the block does not finish."""
    con.execute("BEGIN IMMEDIATE")
    committed = False
    try:
        yield
        con.execute("COMMIT")
        committed = True
    finally:
        if not committed:
            con.execute("ROLLBACK")


class SqliteRecords:
    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        try:
            self.con = open_db(path, timeout_s)
            for statement in SCHEMA:
                self.con.execute(statement)
        except sqlite3.Error as exc:
            raise RecordUnavailable(f"sqlite {path}: {exc}") from None

    async def get(self, kind: Kind, ident: str) -> dict[str, Any] | None:
        try:
            if kind == "key" and ident.startswith("sha256:"):
                row = self.con.execute("SELECT id FROM key_hashes WHERE sha256 = ?",
                                       (ident[7:],)).fetchone()  # fmt: skip
                if row is None:
                    return None
                ident = row[0]
            row = self.con.execute("SELECT data FROM records WHERE kind = ? AND id = ?",
                                   (kind, ident)).fetchone()  # fmt: skip
        except sqlite3.Error as exc:
            raise RecordUnavailable(f"sqlite {self.path}: {exc}") from None
        return json.loads(row[0]) if row else None

    async def put(self, kind: Kind, record: dict[str, Any], audit: dict[str, Any]) -> None:
        con = self.con
        try:
            with transaction(con):
                con.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                            (kind, record["id"], json.dumps(record)))  # fmt: skip
                if kind == "key":
                    con.execute("INSERT OR REPLACE INTO key_hashes VALUES (?, ?)",
                                (record["sha256"], record["id"]))  # fmt: skip
                con.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", (
                    audit["at"], audit["actor"], audit["action"], kind, record["id"],
                    json.dumps(audit["before"]), json.dumps(audit["after"])))  # fmt: skip
        except sqlite3.Error as exc:
            raise RecordUnavailable(f"sqlite {self.path}: {exc}") from None

    async def list_all(self, kind: Kind) -> list[dict[str, Any]]:
        try:
            rows = self.con.execute("SELECT data FROM records WHERE kind = ? ORDER BY id",
                                    (kind,)).fetchall()  # fmt: skip
        except sqlite3.Error as exc:
            raise RecordUnavailable(f"sqlite {self.path}: {exc}") from None
        return [json.loads(r[0]) for r in rows]

    async def audit(self, limit: int) -> list[dict[str, Any]]:
        try:
            rows = self.con.execute("SELECT at, actor, action, kind, id, before, after FROM audit "
                                    "ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall()  # fmt: skip
        except sqlite3.Error as exc:
            raise RecordUnavailable(f"sqlite {self.path}: {exc}") from None
        return [{"at": at, "actor": actor, "action": action, "kind": kind, "id": ident,
                 "before": json.loads(before), "after": json.loads(after)}
                for at, actor, action, kind, ident, before, after in rows]  # fmt: skip

    async def aclose(self) -> None:
        self.con.close()
