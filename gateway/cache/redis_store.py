"""`backend: redis`: entries and vectors in Redis, shared by every replica.

Keys: `llmgw:c:<cache>:<namespace>:<digest>` (an entry, `SET ... PX`) and
`llmgw:v:<cache>:<namespace>:<partition>` (fixed-size records: entry digest, expiry and
float32 vector; float16 would halve the bytes read, but numpy's conversion back costs what
the transfer saves: ~0.7 ms for 1,000 vectors here). A lookup is one `GET` (exact) or
two (semantic: the partition, then the entry). Every call is bounded by the cache's
`timeout_ms`; past it, or with Redis down, the call raises `StoreUnavailable` and the
cache is bypassed. Clearing and counting (the CLI's) are bounded by 30 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.cache.store import StoreInfo, StoreUnavailable
from gateway.local.quant import F32

T = TypeVar("T")
ADMIN_TIMEOUT_S = 30.0  # clearing and counting walk every key: bounded, but not by timeout_ms


def connect(url: str, timeout_s: float) -> aioredis.Redis:
    """One client (and its connection pool) per URL, built once per policy; a command is
    never retried (a lookup that missed its deadline is a bypass, not a second try)."""
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0), max_connections=256, health_check_interval=0,
        socket_read_size=1 << 20,  # a semantic partition is ~0.8 MB: few reads, not 26
    )  # fmt: skip


class RedisStore:
    def __init__(self, client: aioredis.Redis, cache: str, timeout_s: float) -> None:
        self.client, self.timeout_s = client, timeout_s
        self.entries, self.vectors = f"llmgw:c:{cache}:", f"llmgw:v:{cache}:"

    async def call(self, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await work
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def get(self, namespace: str, key: str) -> bytes | None:
        value = await self.call(self.client.get(f"{self.entries}{namespace}:{key}"))
        return cast(bytes | None, value)

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: float) -> None:
        await self.call(
            self.client.set(f"{self.entries}{namespace}:{key}", value, px=int(ttl_s * 1000))
        )

    async def clear(self, namespace: str | None = None) -> int:
        """Every entry (and vector partition) of the namespace, or of the cache."""
        return await self.admin(self._clear(namespace))

    async def admin(self, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(ADMIN_TIMEOUT_S):
                return await work
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def _clear(self, namespace: str | None) -> int:
        removed = 0
        for prefix in (self.entries, self.vectors):
            pattern = f"{prefix}{namespace}:*" if namespace is not None else f"{prefix}*"
            batch: list[Any] = []
            async for name in self.client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) == 1000:
                    removed += await self.client.unlink(*batch) if prefix == self.entries else 0
                    batch = []
            if batch:
                unlinked = await self.client.unlink(*batch)
                removed += unlinked if prefix == self.entries else 0
        return removed

    async def info(self) -> StoreInfo:
        return await self.admin(self._info())

    async def _info(self) -> StoreInfo:
        entries = size = 0
        async for name in self.client.scan_iter(match=f"{self.entries}*", count=1000):
            entries += 1
            size += await self.client.strlen(name)
        return StoreInfo(entries, size)


# Appends a record to a partition, keeps only the newest `cap` records, refreshes the
# partition's expiry: one round trip, atomic (replicas appending at once lose nothing).
APPEND = """
local length = redis.call('APPEND', KEYS[1], ARGV[1])
local keep = tonumber(ARGV[2]) * tonumber(ARGV[3])
if length > keep then
  local blob = redis.call('GET', KEYS[1])
  redis.call('SET', KEYS[1], string.sub(blob, length - keep + 1))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return length
"""


class RedisIndex:
    """A partition's vectors in one Redis string of fixed-size records (entry digest,
    expiry, vector), so that a lookup is one `GET` read by numpy in one call,
    with no per-entry Python; the nearest are found here."""

    def __init__(self, store: RedisStore, max_partition: int, dims: int = 384) -> None:
        self.store, self.cap, self.dims = store, max_partition, dims
        self.record = np.dtype([("key", "S64"), ("expires", "<f8"), ("vector", "<f4", (dims,))])
        self.append = store.client.register_script(APPEND)

    def _name(self, partition: str) -> str:
        return f"{self.store.vectors}{partition}"

    async def add(self, partition: str, key: str, vector: F32, ttl_s: float) -> None:
        record = np.zeros(1, self.record)
        record["key"], record["expires"], record["vector"] = (
            key.encode(),
            time.time() + ttl_s,
            vector,
        )
        await self.store.call(self.append(
            keys=[self._name(partition)],
            args=[record.tobytes(), self.record.itemsize, self.cap, int(ttl_s * 1000)],
        ))  # fmt: skip

    async def nearest(self, partition: str, vector: F32, k: int) -> list[tuple[str, float]]:
        blob = cast(
            bytes | None, await self.store.call(self.store.client.get(self._name(partition)))
        )
        if not blob or len(blob) % self.record.itemsize:
            return []
        records = np.frombuffer(blob, self.record)
        live = records[records["expires"] > time.time()]
        if not len(live):
            return []
        scores = live["vector"] @ vector
        found: dict[str, float] = {}
        for i in np.argsort(-scores):  # a rewritten entry appears twice: the first counts
            found.setdefault(live["key"][i].decode(), float(scores[i]))
            if len(found) == k:
                break
        return list(found.items())

    async def clear(self, namespace: str | None = None) -> None:
        return None  # RedisStore.clear removes the vector partitions with the entries
