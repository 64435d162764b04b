"""The contract both record stores pass (embedded SQLite and Redis): records by id and a
key's record by its secret's hash, listing, audit rows newest first, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.keys import RecordStore
from gateway.keys.redis_records import RedisRecords
from gateway.keys.sqlite_records import SqliteRecords

HASH = "ab" * 32


@pytest.fixture(params=["embedded", "redis"])
async def records(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RecordStore]:
    if request.param == "embedded":
        store: RecordStore = SqliteRecords(tmp_path / "state.db", 1.0)
        yield store
        await store.aclose()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    yield RedisRecords(client, 1.0)
    await client.aclose()


def audit(action: str, after: dict[str, object]) -> dict[str, object]:
    return {"at": "2026-12-07T00:00:00+00:00", "actor": "admin:x", "action": action,
            "before": None, "after": after}  # fmt: skip


async def test_records_by_id_and_by_hash(records: RecordStore) -> None:
    key = {"id": "k1", "sha256": HASH, "team": "t"}
    await records.put("key", key, audit("create", {"id": "k1"}))
    assert await records.get("key", "k1") == key
    assert await records.get("key", "sha256:" + HASH) == key
    assert await records.get("key", "sha256:" + "cd" * 32) is None
    assert await records.get("team", "k1") is None  # kinds apart
    await records.put("key", {**key, "team": "u"}, audit("update", {"id": "k1"}))
    assert (await records.get("key", "sha256:" + HASH) or {})["team"] == "u"


async def test_list_and_audit(records: RecordStore) -> None:
    for ident in ("b", "a"):
        await records.put("team", {"id": ident}, audit("create", {"id": ident}))
    await records.put("key", {"id": "k", "sha256": HASH}, audit("create", {"id": "k"}))
    assert [r["id"] for r in await records.list_all("team")] == ["a", "b"]
    rows = await records.audit(10)
    assert [(r["action"], r["kind"], r["id"]) for r in rows] == [
        ("create", "key", "k"), ("create", "team", "a"), ("create", "team", "b"),
    ]  # fmt: skip
    assert rows[0]["actor"] == "admin:x" and rows[0]["after"] == {"id": "k"}
    assert len(await records.audit(1)) == 1
