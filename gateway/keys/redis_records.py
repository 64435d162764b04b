"""The redis record store: a hash of JSON records per kind, a hash index from a key's
secret hash to its id, and an audit list; each change one MULTI/EXEC transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.keys import Kind, RecordUnavailable

RECORDS = "gw:records:"
HASHES = "gw:records:key-hashes"
AUDIT = "gw:audit"
AUDIT_KEEP = 100_000


class RedisRecords:
    def __init__(self, client: aioredis.Redis, timeout_s: float) -> None:
        self.client, self.timeout_s = client, timeout_s

    async def get(self, kind: Kind, ident: str) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                if kind == "key" and ident.startswith("sha256:"):
                    found = await self.client.hget(HASHES, ident[7:])
                    if found is None:
                        return None
                    ident = found.decode() if isinstance(found, bytes) else str(found)
                raw = await self.client.hget(RECORDS + kind, ident)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RecordUnavailable(f"redis: {exc or type(exc).__name__}") from None
        doc: dict[str, Any] | None = orjson.loads(raw) if raw is not None else None
        return doc

    async def put(self, kind: Kind, record: dict[str, Any], audit: dict[str, Any]) -> None:
        row = orjson.dumps({**audit, "kind": kind, "id": record["id"]})
        try:
            async with asyncio.timeout(self.timeout_s * 5), self.client.pipeline() as pipe:
                pipe.hset(RECORDS + kind, record["id"], orjson.dumps(record))
                if kind == "key":
                    pipe.hset(HASHES, record["sha256"], record["id"])
                pipe.lpush(AUDIT, row)
                pipe.ltrim(AUDIT, 0, AUDIT_KEEP - 1)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise RecordUnavailable(f"redis: {exc or type(exc).__name__}") from None

    async def list_all(self, kind: Kind) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(self.timeout_s * 5):
                found = await self.client.hgetall(RECORDS + kind)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RecordUnavailable(f"redis: {exc or type(exc).__name__}") from None
        return sorted((orjson.loads(v) for v in found.values()), key=lambda r: str(r["id"]))

    async def audit(self, limit: int) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(self.timeout_s * 5):
                rows = await self.client.lrange(AUDIT, 0, limit - 1)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RecordUnavailable(f"redis: {exc or type(exc).__name__}") from None
        return [orjson.loads(r) for r in rows]

    async def aclose(self) -> None:
        """The client is the runtime's."""
