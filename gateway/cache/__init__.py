"""Response caching: the `Cache` extension point and its registry.

A policy's `caches:` name caches; a model opts in with `cache: <name>`. The `type` picks
the implementation (`exact`, `semantic`), the `backend` where entries live (`memory`:
per process; `redis`: shared by every replica). `stage.py` is what the request path
calls; `key.py` says what an entry is keyed by.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis

from gateway.cache.entry import Entry
from gateway.cache.redis_store import RedisIndex, RedisStore
from gateway.cache.response_cache import Embedder, ExactCache, Found, Lookup, SemanticCache
from gateway.cache.store import MB, EntryStore, MemoryIndex, MemoryStore, StoreInfo, VectorIndex
from gateway.policy.models import CacheConfig

__all__ = ["Cache", "Found", "Lookup", "build_cache", "namespace_id"]
VECTOR_BYTES = 384 * 4 + 100


class Cache(Protocol):
    name: str
    config: CacheConfig
    counts: Counter[str]

    async def lookup(self, lookup: Lookup) -> Found | None: ...

    def store_now(self, lookup: Lookup, entry: Entry) -> bool: ...

    async def store_entry(self, lookup: Lookup, entry: Entry) -> bool: ...

    async def clear(self, namespace: str | None = None) -> int: ...

    @property
    def store(self) -> EntryStore: ...


def namespace_id(namespace: str) -> str:
    """A tenant's namespace as it appears in store keys (no glob or separator characters)."""
    return hashlib.sha256(namespace.encode()).hexdigest()[:16]


def build_exact(name: str, config: CacheConfig, store: EntryStore,
                _: Callable[[], Embedder]) -> Cache:  # fmt: skip
    return ExactCache(name, config, store)


def build_semantic(name: str, config: CacheConfig, store: EntryStore,
                   embedder: Callable[[], Embedder]) -> Cache:  # fmt: skip
    index: VectorIndex
    if isinstance(store, RedisStore):
        index = RedisIndex(store, config.max_partition)
    else:  # vectors may take a quarter of max_mb on top of the entries
        index = MemoryIndex(
            config.max_partition, max(1, int(config.max_mb * MB / 4 / VECTOR_BYTES))
        )
    return SemanticCache(name, config, store, index=index, embedder=embedder())


CACHE_TYPES = {"exact": build_exact, "semantic": build_semantic}


def build_cache(
    name: str,
    config: CacheConfig,
    redis: Callable[[str, float], aioredis.Redis],
    embedder: Callable[[], Embedder],
) -> Cache:
    """`redis(url, timeout_s)` gives the shared client for a URL; `embedder()` the shared
    MiniLM (built on first use)."""
    store: EntryStore
    if config.backend == "redis":
        assert config.redis_url is not None  # the policy's cross-reference check
        timeout = config.timeout_ms / 1000
        store = RedisStore(redis(config.redis_url, timeout), name, timeout)
    else:
        store = MemoryStore(config.max_mb)
    return CACHE_TYPES[config.type](name, config, store, embedder)


async def store_info(cache: Cache) -> StoreInfo:
    return await cache.store.info()
