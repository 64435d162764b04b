"""Where entries live: the `EntryStore` and `VectorIndex` Protocols, and their in-process
implementations (`backend: memory`: each gateway process keeps its own, bounded by
`max_mb`, least recently used out first). The Redis ones are in `redis_store.py`; both
pass one contract suite (tests/cache/test_store_contract.py).

Keys arrive already scoped: `namespace` is the tenant's (hashed), `key` the request's
digest. Values are opaque bytes (an encoded `Entry`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gateway.local.quant import F32

MB = 1024 * 1024
OVERHEAD = 200  # bytes an entry costs beyond its value: key, tuple, dict slot


class StoreUnavailable(Exception):
    """The store did not answer in time (or at all): the cache is bypassed."""


@dataclass(frozen=True, slots=True)
class StoreInfo:
    entries: int
    bytes: int


class EntryStore(Protocol):
    async def get(self, namespace: str, key: str) -> bytes | None: ...

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: float) -> None: ...

    async def clear(self, namespace: str | None = None) -> int: ...

    async def info(self) -> StoreInfo: ...


class VectorIndex(Protocol):
    """Semantic neighbours: per partition, entry keys and their unit vectors."""

    async def add(self, partition: str, key: str, vector: F32, ttl_s: float) -> None: ...

    async def nearest(self, partition: str, vector: F32, k: int) -> list[tuple[str, float]]: ...

    async def clear(self, namespace: str | None = None) -> None: ...


class MemoryStore:
    """An LRU over (namespace, key), bounded by the bytes of its values."""

    def __init__(self, max_mb: float) -> None:
        self.limit = int(max_mb * MB)
        self.size = 0
        self._items: OrderedDict[tuple[str, str], tuple[bytes, float]] = OrderedDict()

    async def get(self, namespace: str, key: str) -> bytes | None:
        item = self._items.get((namespace, key))
        if item is None:
            return None
        if item[1] <= time.monotonic():
            self._drop((namespace, key))
            return None
        self._items.move_to_end((namespace, key))
        return item[0]

    async def put(self, namespace: str, key: str, value: bytes, ttl_s: float) -> None:
        self.put_now(namespace, key, value, ttl_s)

    def put_now(self, namespace: str, key: str, value: bytes, ttl_s: float) -> None:
        """In place, without an await: the request path's write needs no task for it."""
        cost = len(value) + OVERHEAD
        if cost > self.limit:
            return
        self._drop((namespace, key))
        while self.size + cost > self.limit:
            self._drop(next(iter(self._items)))
        self._items[(namespace, key)] = (value, time.monotonic() + ttl_s)
        self.size += cost

    def _drop(self, slot: tuple[str, str]) -> None:
        item = self._items.pop(slot, None)
        if item is not None:
            self.size -= len(item[0]) + OVERHEAD

    async def clear(self, namespace: str | None = None) -> int:
        slots = [s for s in self._items if namespace is None or s[0] == namespace]
        for slot in slots:
            self._drop(slot)
        return len(slots)

    async def info(self) -> StoreInfo:
        return StoreInfo(len(self._items), self.size)


class Partition:
    """One context's vectors: a matrix grown by doubling, keys alongside, oldest first."""

    def __init__(self, dims: int) -> None:
        self.keys: list[str] = []
        self.expires: list[float] = []
        self.matrix: F32 = np.zeros((8, dims), np.float32)

    def add(self, key: str, vector: F32, expires: float, cap: int) -> int:
        """Returns how many vectors were dropped (past `cap` or expired)."""
        if key in self.keys:
            return 0
        if len(self.keys) == len(self.matrix):
            self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        self.matrix[len(self.keys)] = vector
        self.keys.append(key)
        self.expires.append(expires)
        now = time.monotonic()
        drop = next((i for i, t in enumerate(self.expires) if t > now), len(self.keys))
        drop = max(drop, len(self.keys) - cap)  # expiries are in insertion order (one ttl)
        if drop:
            del self.keys[:drop], self.expires[:drop]
            self.matrix[: len(self.keys)] = self.matrix[drop : drop + len(self.keys)]
        return drop


class MemoryIndex:
    """Vectors in process; brute force over the partition's matrix (one matrix-vector
    product: ~20 us for 2,000 vectors of 384 dimensions here, see benchmarks/cache.py)."""

    def __init__(self, max_partition: int, max_vectors: int, dims: int = 384) -> None:
        self.cap, self.max_vectors, self.dims = max_partition, max_vectors, dims
        self.total = 0
        self._partitions: OrderedDict[str, Partition] = OrderedDict()

    async def add(self, partition: str, key: str, vector: F32, ttl_s: float) -> None:
        self.add_now(partition, key, vector, ttl_s)

    def add_now(self, partition: str, key: str, vector: F32, ttl_s: float) -> None:
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = Partition(self.dims)
        self._partitions.move_to_end(partition)
        before = len(part.keys)
        part.add(key, vector, time.monotonic() + ttl_s, self.cap)
        self.total += len(part.keys) - before
        while self.total > self.max_vectors and len(self._partitions) > 1:
            _, oldest = self._partitions.popitem(last=False)
            self.total -= len(oldest.keys)

    async def nearest(self, partition: str, vector: F32, k: int) -> list[tuple[str, float]]:
        part = self._partitions.get(partition)
        if part is None or not part.keys:
            return []
        self._partitions.move_to_end(partition)
        scores = part.matrix[: len(part.keys)] @ vector
        order = np.argsort(-scores)[:k]
        now = time.monotonic()
        return [(part.keys[i], float(scores[i])) for i in order if part.expires[i] > now]

    async def clear(self, namespace: str | None = None) -> None:
        """Partitions are named `<namespace>:<digest>`."""
        for name in [p for p in self._partitions
                     if namespace is None or p.startswith(namespace + ":")]:  # fmt: skip
            self.total -= len(self._partitions.pop(name).keys)
