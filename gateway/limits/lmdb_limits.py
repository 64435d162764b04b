"""The `embedded` limit store: LMDB (memory-mapped B+trees, one writer at a time across
every process on the machine, readers never blocked), in `gateway-limits.lmdb` beside
the request log. A step is one write transaction of a few microseconds (SQLite's was
~100 us: a disk commit each); the clock is the machine's, which every worker shares.

Durability: the transactions are atomic and consistent across processes, and the file
is never corrupted by a crash; committed steps reach the disk with the OS's own writeback
(no fsync a request), so a power loss may forget the last seconds of counting (the
minute windows restart anyway; a budget may be under-counted by what was spent then)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import lmdb
import orjson

from gateway.limits import Check, Decision, StoreUnavailable

PAIR = struct.Struct("<dd")  # a counter: value, expires
ONE = struct.Struct("<d")  # a lease: expires
SWEEP = 20
CLEAN_EVERY = 10_000  # steps between deletions of expired counters
MAP_SIZE = 1 << 30  # the most the file may grow to (sparse: only what is used is on disk)


class LmdbLimits:
    def __init__(self, path: Path, timeout_s: float, lease_s: float,
                 reservation_ttl_s: float) -> None:  # fmt: skip
        self.path, self.lease_s, self.ttl_s = path, lease_s, reservation_ttl_s
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.env = lmdb.open(str(path), subdir=False, map_size=MAP_SIZE, max_dbs=4,
                                 sync=False, metasync=False, readahead=False)  # fmt: skip
            self.counters = self.env.open_db(b"counters")
            self.leases = self.env.open_db(b"leases")
            self.reservations = self.env.open_db(b"reservations")
            self.expiring = self.env.open_db(b"expiring")  # "<expires>\0<request id>"
        except lmdb.Error as exc:
            raise StoreUnavailable(f"lmdb {path}: {exc}") from None
        self._steps = 0

    async def reserve(self, request_id: str, checks: list[Check]) -> Decision:
        try:
            with self.env.begin(write=True) as txn:
                return self._reserve(txn, request_id, checks, time.time())
        except lmdb.Error as exc:
            raise StoreUnavailable(f"lmdb {self.path}: {exc}") from None

    def _reserve(self, txn: lmdb.Transaction, request_id: str, checks: list[Check],
                 now: float) -> Decision:  # fmt: skip
        self._sweep(txn, now)
        rid = request_id.encode()
        if txn.get(rid, db=self.reservations) is not None:
            return Decision(True, now)
        keys = [window_key(c, now).encode() for c in checks]
        found = [self._value(txn, c, k, now) for c, k in zip(checks, keys, strict=True)]
        values = [value for value, _ in found]
        for check, current in zip(checks, values, strict=True):
            if (check.kind in ("count", "lease") and current + check.amount > check.limit) or (
                check.kind in ("tokens", "usd") and current >= check.limit
            ):
                return Decision(False, now, check, [current])
        reserved = []
        for check, key, (current, expires) in zip(checks, keys, found, strict=True):
            if check.kind == "lease":
                txn.put(key + b"\0" + rid, ONE.pack(now + self.lease_s), db=self.leases)
            else:
                txn.put(key, PAIR.pack(current + check.amount, expires or now + check.ttl_s),
                        db=self.counters)  # fmt: skip
            if check.kind != "count":
                reserved.append([check.kind, key.decode(), check.amount])
        ends = f"{now + self.ttl_s:020.6f}"
        txn.put(rid, orjson.dumps([ends, reserved]), db=self.reservations)
        txn.put(ends.encode() + b"\0" + rid, b"", db=self.expiring)
        return Decision(
            True, now, None, [v + c.amount for v, c in zip(values, checks, strict=True)]
        )

    def _value(self, txn: lmdb.Transaction, check: Check, key: bytes,
               now: float) -> tuple[float, float | None]:  # fmt: skip
        """The counter now, and its live window's expiry (None: a new window)."""
        if check.kind == "lease":
            return float(self._live_leases(txn, key, now)), None
        found = txn.get(key, db=self.counters)
        if found is None:
            return 0.0, None
        value, expires = PAIR.unpack(found)
        return (value, expires) if expires >= now else (0.0, None)

    def _live_leases(self, txn: lmdb.Transaction, key: bytes, now: float) -> int:
        """Leases held on `key`; expired ones are deleted on the way."""
        prefix, live = key + b"\0", 0
        cursor = txn.cursor(db=self.leases)
        found = cursor.set_range(prefix)
        while found and bytes(cursor.key()).startswith(prefix):
            if ONE.unpack(cursor.value())[0] >= now:
                live += 1
                found = cursor.next()
            else:
                found = cursor.delete()  # (moves to the next entry)
        return live

    def _sweep(self, txn: lmdb.Transaction, now: float) -> None:
        """Reservations past their TTL end (their leases with them); now and then, old
        counter windows go."""
        self._steps += 1
        if self._steps % CLEAN_EVERY == 0:
            cursor = txn.cursor(db=self.counters)
            found = cursor.first()
            while found:
                found = cursor.delete() if PAIR.unpack(cursor.value())[1] < now else cursor.next()
        cursor = txn.cursor(db=self.expiring)
        limit = f"{now:020.6f}".encode()
        for _ in range(SWEEP):
            if not cursor.first() or bytes(cursor.key()) >= limit:
                return
            rid = bytes(cursor.key()).split(b"\0", 1)[1]
            cursor.delete()
            data = txn.pop(rid, db=self.reservations)
            if data is not None:
                for kind, key, _ in orjson.loads(data)[1]:
                    if kind == "lease":
                        txn.delete(key.encode() + b"\0" + rid, db=self.leases)

    async def settle(self, request_id: str, tokens: float, usd: float) -> None:
        try:
            with self.env.begin(write=True) as txn:
                self._settle(txn, request_id.encode(), {"tokens": tokens, "usd": usd})
        except lmdb.Error as exc:
            raise StoreUnavailable(f"lmdb {self.path}: {exc}") from None

    def _settle(self, txn: lmdb.Transaction, rid: bytes, actual: dict[str, float]) -> None:
        data = txn.pop(rid, db=self.reservations)
        if data is None:
            return  # settled already, or swept
        expires, reserved = orjson.loads(data)
        txn.delete(expires.encode() + b"\0" + rid, db=self.expiring)
        for kind, key, amount in reserved:
            name = key.encode()
            if kind == "lease":
                txn.delete(name + b"\0" + rid, db=self.leases)
                continue
            found = txn.get(name, db=self.counters)
            if found is not None:
                value, window_end = PAIR.unpack(found)
                txn.put(name, PAIR.pack(value + actual[kind] - amount, window_end),
                        db=self.counters)  # fmt: skip

    async def read(self, checks: list[Check]) -> Decision:
        now = time.time()
        try:
            with self.env.begin(write=True) as txn:  # (expired leases are deleted on the way)
                values = [self._value(txn, c, window_key(c, now).encode(), now)[0] for c in checks]
        except lmdb.Error as exc:
            raise StoreUnavailable(f"lmdb {self.path}: {exc}") from None
        return Decision(True, now, None, values)

    async def aclose(self) -> None:
        self.env.close()


def window_key(check: Check, now: float) -> str:
    if check.window == "minute":
        return f"{check.key}:{int(now // 60)}"
    return f"{check.key}:{check.window}" if check.window else check.key
