"""The contract every limit store passes (embedded LMDB and Redis alike): counters
checked and reserved together or not at all, `count` exact, `tokens`/`usd` overshooting
by at most one reservation, leases, settlement replacing the reservation once (and only
once), expired reservations swept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.limits import Check, LimitStore
from gateway.limits.lmdb_limits import LmdbLimits
from gateway.limits.redis_limits import RedisLimits


@pytest.fixture(params=["embedded", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LimitStore]:
    if request.param == "embedded":
        found: LimitStore = LmdbLimits(tmp_path / "limits.lmdb", 1.0, 600, 900)
        yield found
        await found.aclose()
        return
    url = request.getfixturevalue("redis_url")
    client = aioredis.Redis.from_url(url)
    yield RedisLimits(client, 1.0, 600, 900)
    await client.aclose()


def rpm(limit: int, scope: str = "key:a") -> Check:
    return Check(f"gw:lim:{scope}:rpm", "count", limit, 1, "minute", 120, scope, "rpm")


def tpm(limit: int, amount: float, scope: str = "key:a") -> Check:
    return Check(f"gw:lim:{scope}:tpm", "tokens", limit, amount, "minute", 120, scope, "tpm")


def usd(limit: float, amount: float) -> Check:
    return Check("gw:lim:key:a:usd:month", "usd", limit, amount, "m2026-12-01", 86400, "key:a",
                 "budget:month", 3600)  # fmt: skip


def leases(limit: int) -> Check:
    return Check("gw:lim:key:a:concurrent", "lease", limit, 1, "", 0, "key:a", "concurrent")


async def test_count_is_exact_under_concurrency(store: LimitStore) -> None:
    decisions = await asyncio.gather(*(store.reserve(f"r{i}", [rpm(10)]) for i in range(40)))
    assert sum(d.allowed for d in decisions) == 10
    refused = next(d for d in decisions if not d.allowed)
    assert refused.failed is not None and refused.failed.name == "rpm"
    assert 0 < refused.reset_s(refused.failed) <= 60


async def test_all_or_nothing(store: LimitStore) -> None:
    """A request refused by one counter reserves nothing in the others."""
    assert (await store.reserve("a", [rpm(5, "key:x"), rpm(1, "team:t")])).allowed
    refused = await store.reserve("b", [rpm(5, "key:x"), rpm(1, "team:t")])
    assert not refused.allowed and refused.failed is not None and refused.failed.scope == "team:t"
    after = await store.reserve("c", [rpm(5, "key:x")])
    assert after.allowed and after.values == [2.0]  # "b" took nothing from key:x


async def test_tokens_overshoot_by_at_most_one_reservation(store: LimitStore) -> None:
    assert (await store.reserve("a", [tpm(100, 80)])).allowed
    second = await store.reserve("b", [tpm(100, 80)])  # 80 < 100: room left, reserved
    assert second.allowed and second.values == [160.0]
    assert not (await store.reserve("c", [tpm(100, 1)])).allowed
    await store.settle("a", 10, 0)  # the real usage replaces the reservation: 10 + 80
    assert (await store.reserve("d", [tpm(100, 5)])).allowed


async def test_a_first_request_larger_than_the_limit_passes(store: LimitStore) -> None:
    """A reservation is never refused for being large while there is room left
    (LiteLLM's reservations 429 the first request)."""
    assert (await store.reserve("big", [tpm(100, 5000)])).allowed


async def test_settlement_is_idempotent(store: LimitStore) -> None:
    assert (await store.reserve("a", [usd(1.0, 0.5)])).allowed
    await store.settle("a", 0, 0.2)
    await store.settle("a", 0, 0.2)  # a retried settle changes nothing
    assert (await store.reserve("b", [usd(1.0, 0.1)])).values == pytest.approx([0.3])
    again = await store.reserve("b", [usd(1.0, 0.1)])  # the same request id reserved once
    assert again.allowed
    assert (await store.reserve("c", [usd(1.0, 0.0)])).values == pytest.approx([0.3])


async def test_leases_end_at_settlement(store: LimitStore) -> None:
    assert (await store.reserve("a", [leases(2)])).allowed
    assert (await store.reserve("b", [leases(2)])).allowed
    assert not (await store.reserve("c", [leases(2)])).allowed
    await store.settle("a", 0, 0)
    assert (await store.reserve("c", [leases(2)])).allowed


async def test_expired_leases_and_reservations_are_swept(tmp_path: Path, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    stores: list[LimitStore] = [LmdbLimits(tmp_path / "s.lmdb", 1.0, 0.2, 0.2),
                                RedisLimits(client, 1.0, 0.2, 0.2)]  # fmt: skip
    for store in stores:
        assert (await store.reserve("dies", [leases(1), usd(1.0, 0.4)])).allowed
        assert not (await store.reserve("next", [leases(1)])).allowed
        await asyncio.sleep(0.3)  # the replica that reserved "dies" never settles
        ok = await store.reserve("next", [leases(1), usd(1.0, 0.0)])
        assert ok.allowed and ok.values[1] == pytest.approx(0.4)  # its spend stays counted
        await store.settle("dies", 0, 0)  # too late: swept, changes nothing
        assert (await store.reserve("last", [usd(1.0, 0.0)])).values == pytest.approx([0.4])
        await store.aclose()
    await client.aclose()
