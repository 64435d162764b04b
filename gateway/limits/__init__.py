"""Rate limits and budgets: every scope a request falls under (its key, the key's team,
its end user, and per model within each) checked and reserved in one atomic step before
the call, and settled with the real usage after it. The counters live in a
`LimitStore`, chosen by `store.type`: `embedded` (LMDB, every process on one machine) or
`redis` (replicas; one Lua script a step, Redis's own clock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gateway.policy.limits import Limits, LimitSettings, ScopeLimits, StoreConfig

if TYPE_CHECKING:
    from gateway.policy.models import Policy

Kind = Literal["count", "tokens", "usd", "lease"]


@dataclass(frozen=True, slots=True)
class Check:
    """One counter a request must fit: `count` (requests: room for one more), `tokens`
    and `usd` (room left at all: a request overshoots by at most its own reservation),
    `lease` (requests in flight)."""

    key: str  # the counter's name, its window appended by the store
    kind: Kind
    limit: float
    amount: float  # what this request reserves
    window: str  # "minute" (the store's clock), a period id ("2026-12" ...), "" (leases)
    ttl_s: float  # the counter outlives its window start this long
    scope: str  # "key:team-a", "team:search:model:gpt-4o", "user:alice"
    name: str  # rpm | tpm | concurrent | budget:day | budget:week | budget:month
    reset_s: float = 0.0  # budgets: seconds to the period's end (minutes: from the store)


@dataclass(slots=True)
class Decision:
    allowed: bool
    now_s: float  # the store's clock
    failed: Check | None = None
    values: list[float] = field(default_factory=list)  # each counter after the step

    def reset_s(self, check: Check) -> float:
        if check.window == "minute":
            return 60 - self.now_s % 60
        return check.reset_s if check.window else 1.0


class StoreUnavailable(Exception):
    """The store did not answer in time, or failed: the policy's `on_error` decides."""


class LimitStore(Protocol):
    async def reserve(self, request_id: str, checks: list[Check]) -> Decision:
        """Check every counter and, if all fit, reserve them all (one atomic step)."""
        ...

    async def settle(self, request_id: str, tokens: float, usd: float) -> None:
        """The request's real usage replaces its reservation; its leases end. Idempotent:
        a second settle (or one after the sweep) changes nothing."""
        ...

    async def read(self, checks: list[Check]) -> Decision:
        """Each counter's value now (nothing reserved): for `/admin/usage`."""
        ...

    async def aclose(self) -> None: ...


RedisFactory = Callable[[str, float], Any]  # (url, timeout_s) -> the shared client


LIMITS_FILE = "gateway-limits.lmdb"  # the embedded store's counters


def build_store(config: StoreConfig, settings: LimitSettings, redis: RedisFactory,
                folder: Path) -> LimitStore:  # fmt: skip
    """The policy's `store:` for counters: embedded (SQLite) or redis."""
    timeout_s = config.timeout_ms / 1000
    if config.type == "redis":
        from gateway.limits.redis_limits import RedisLimits

        assert config.url is not None  # (refused at load otherwise)
        return RedisLimits(redis(config.url, timeout_s), timeout_s, settings.lease_s,
                           settings.reservation_ttl_s)  # fmt: skip
    from gateway.limits.lmdb_limits import LmdbLimits

    return LmdbLimits(folder / LIMITS_FILE, timeout_s, settings.lease_s,
                      settings.reservation_ttl_s)  # fmt: skip


def limits_configured(policy: Policy) -> bool:
    """Anything to enforce: limits or budgets on keys, their defaults, teams, end users."""

    def some(scope: ScopeLimits) -> bool:
        return bool(scope.budgets) or scope.limits != Limits()

    return (some(policy.keys_defaults) or some(policy.end_users)
            or any(some(t) for t in policy.teams.values())
            or any(k.budgets or k.limits != Limits() for k in policy.auth.keys))  # fmt: skip
