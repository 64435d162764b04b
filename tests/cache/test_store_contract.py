"""One contract for every entry store and vector index: in memory and in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from gateway.cache.redis_store import RedisIndex, RedisStore, connect
from gateway.cache.store import EntryStore, MemoryIndex, MemoryStore, VectorIndex
from tests.cache.conftest import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EntryStore]:
    if request.param == "memory":
        yield MemoryStore(max_mb=1)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    url = request.getfixturevalue("redis_url")
    client = connect(url, 0.5)
    yield RedisStore(client, "contract", 0.5)
    await client.aclose()
    assert server.proc is not None


async def test_put_get_overwrite(store: EntryStore) -> None:
    assert await store.get("ns", "k") is None
    await store.put("ns", "k", b"one", 60)
    assert await store.get("ns", "k") == b"one"
    await store.put("ns", "k", b"two", 60)
    assert await store.get("ns", "k") == b"two"
    assert await store.get("other", "k") is None  # namespaces are apart


async def test_expiry(store: EntryStore) -> None:
    await store.put("ns", "short", b"v", 0.2)
    assert await store.get("ns", "short") == b"v"
    await asyncio.sleep(0.35)
    assert await store.get("ns", "short") is None


async def test_clear_a_namespace_or_all(store: EntryStore) -> None:
    for ns in ("a", "b"):
        for k in ("1", "2"):
            await store.put(ns, k, b"v", 60)
    assert (await store.info()).entries == 4
    assert await store.clear("a") == 2
    assert await store.get("a", "1") is None and await store.get("b", "1") == b"v"
    assert await store.clear() == 2
    assert (await store.info()).entries == 0


@pytest.fixture(params=["memory", "redis"])
async def index(request: pytest.FixtureRequest) -> AsyncIterator[VectorIndex]:
    if request.param == "memory":
        yield MemoryIndex(max_partition=3, max_vectors=100, dims=4)
        return
    url = request.getfixturevalue("redis_url")
    client = connect(url, 0.5)
    yield RedisIndex(RedisStore(client, "contract", 0.5), max_partition=3, dims=4)
    await client.aclose()


def unit(*values: float) -> np.ndarray:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


async def test_nearest_within_a_partition_only(index: VectorIndex) -> None:
    await index.add("ns:p", "a", unit(1, 0, 0, 0), 60)
    await index.add("ns:p", "b", unit(1, 1, 0, 0), 60)
    await index.add("ns:q", "c", unit(1, 0, 0, 0), 60)
    found = await index.nearest("ns:p", unit(1, 0.1, 0, 0), 2)
    assert [k for k, _ in found] == ["a", "b"]
    assert found[0][1] == pytest.approx(float(unit(1, 0.1, 0, 0) @ unit(1, 0, 0, 0)), abs=1e-5)
    assert await index.nearest("ns:none", unit(1, 0, 0, 0), 2) == []


async def test_partition_keeps_the_newest(index: VectorIndex) -> None:
    for i, key in enumerate("abcd"):
        await index.add("ns:p", key, unit(1, i, 0, 0), 60)
    keys = {k for k, _ in await index.nearest("ns:p", unit(1, 0, 0, 0), 10)}
    assert keys == {"b", "c", "d"}


async def test_vectors_expire(index: VectorIndex) -> None:
    await index.add("ns:p", "a", unit(1, 0, 0, 0), 0.2)
    await asyncio.sleep(0.35)
    assert await index.nearest("ns:p", unit(1, 0, 0, 0), 2) == []
