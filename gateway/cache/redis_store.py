"""`backend: redis`: entries and vectors in Redis, shared by every replica.

Keys: `llmgw:c:<cache>:<namespace>:<digest>` (an entry, `SET ... EX ttl_s`) and
`llmgw:v:<cache>:<namespace>:<partition>` (a hash: entry digest -> float32 vector and its
expiry). A lookup is one `GET` (exact) or one `HGETALL` then one `GET` (semantic). Every
call is bounded by the cache's `timeout_ms`; past it, or with Redis down, the call raises
`StoreUnavailable` and the cache is bypassed.
"""

from __future__ import annotations

import asyncio
import struct
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
EXPIRY = struct.Struct("<d")


def connect(url: str, timeout_s: float) -> aioredis.Redis:
    """One client (and its connection pool) per URL, built once per policy; a command is
    never retried (a lookup that missed its deadline is a bypass, not a second try)."""
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0), max_connections=256, health_check_interval=0,
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
        entries = size = 0
        async for name in self.client.scan_iter(match=f"{self.entries}*", count=1000):
            entries += 1
            size += await self.client.strlen(name)
        return StoreInfo(entries, size)


class RedisIndex:
    """A partition's vectors in one Redis hash; the nearest found here, in numpy."""

    def __init__(self, store: RedisStore, max_partition: int, dims: int = 384) -> None:
        self.store, self.cap, self.dims = store, max_partition, dims

    def _name(self, partition: str) -> str:
        return f"{self.store.vectors}{partition}"

    async def add(self, partition: str, key: str, vector: F32, ttl_s: float) -> None:
        name = self._name(partition)
        value = EXPIRY.pack(time.time() + ttl_s) + vector.astype("<f4").tobytes()
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hset(name, key, value)
        pipe.pexpire(name, int(ttl_s * 1000))
        pipe.hlen(name)
        *_, length = await self.store.call(pipe.execute())
        if int(length) > self.cap:
            await self.store.call(self._trim(name))

    async def _trim(self, name: str) -> None:
        """Past `max_partition`: the oldest (soonest to expire) go."""
        fields = cast(dict[bytes, bytes], await self.store.client.hgetall(name))
        ordered = sorted(fields, key=lambda f: EXPIRY.unpack_from(fields[f])[0])
        await self.store.client.hdel(name, *ordered[: len(ordered) - self.cap])

    async def nearest(self, partition: str, vector: F32, k: int) -> list[tuple[str, float]]:
        fields = cast(
            dict[bytes, bytes],
            await self.store.call(self.store.client.hgetall(self._name(partition))),
        )
        now, size = time.time(), EXPIRY.size + 4 * self.dims
        live = [(f, v) for f, v in fields.items()
                if len(v) == size and EXPIRY.unpack_from(v)[0] > now]  # fmt: skip
        if not live:
            return []
        matrix = np.frombuffer(b"".join(v[EXPIRY.size :] for _, v in live), "<f4")
        scores = matrix.reshape(len(live), self.dims) @ vector
        order = np.argsort(-scores)[:k]
        return [(live[i][0].decode(), float(scores[i])) for i in order]

    async def clear(self, namespace: str | None = None) -> None:
        return None  # RedisStore.clear removes the vector partitions with the entries
