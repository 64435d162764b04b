"""Which counters a request must fit (pure): its key's limits (with `keys_defaults`
filling what the key leaves unset) and budgets, its team's, its end user's, and in each
the limits for the model it asks for."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.limits import Check
from gateway.limits.periods import period
from gateway.policy.limits import Budget, Limits, ModelLimits, ScopeLimits
from gateway.policy.models import Policy

PREFIX = "gw:lim:"
MINUTE_TTL_S = 120.0
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Scope:
    name: str  # key:ID | team:NAME | user:ID
    limits: Limits
    budgets: tuple[Budget, ...]


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What limits need of a gateway key (from the policy or the key store)."""

    id: str
    team: str | None
    limits: Limits
    budgets: tuple[Budget, ...]


ScopeCache = dict[int, tuple[KeyLimits, Scope]]


def key_scope(key: KeyLimits, defaults: ScopeLimits, cache: ScopeCache | None) -> Scope:
    """A key's limits over `keys_defaults`, merged once per key object (policy keys live
    as long as their policy, API keys' identities a second) when a cache is given."""
    cached = cache.get(id(key)) if cache is not None else None
    if cached is not None and cached[0] is key:
        return cached[1]
    scope = Scope(f"key:{key.id}", key.limits.merged_over(defaults.limits),
                  key.budgets or defaults.budgets)  # fmt: skip
    if cache is not None:
        if len(cache) > 10_000:
            cache.clear()
        cache[id(key)] = (key, scope)
    return scope


def scopes(policy: Policy, key: KeyLimits | None, user: str | None,
           api_team: ScopeLimits | None = None,
           cache: ScopeCache | None = None) -> list[Scope]:  # fmt: skip
    found = []
    if key is not None:
        found.append(key_scope(key, policy.keys_defaults, cache))
        team: ScopeLimits | None = policy.teams.get(key.team) if key.team else None
        team = team if team is not None else api_team
        if team is not None:
            found.append(Scope(f"team:{key.team}", team.limits, team.budgets))
    end_users = policy.end_users
    if user and (end_users.budgets or end_users.limits != Limits()):
        found.append(Scope(f"user:{user}", end_users.limits, end_users.budgets))
    return found


def checks(scopes: list[Scope], model: str, tokens: float, usd: Decimal, now_s: float,
           zone: ZoneInfo) -> list[Check]:  # fmt: skip
    """Every counter, in a fixed order (scope, then model within it), so that two
    requests reserve in the same order."""
    out: list[Check] = []
    for scope in scopes:
        out += rate_checks(scope.name, scope.limits, tokens)
        per_model = scope.limits.models.get(model)
        if per_model is not None:
            out += rate_checks(f"{scope.name}:model:{model}", per_model, tokens)
        for budget in scope.budgets:
            if budget.model is not None and budget.model != model:
                continue
            where = scope.name if budget.model is None else f"{scope.name}:model:{model}"
            window, left = period(budget.period, now_s, zone)
            out.append(Check(f"{PREFIX}{where}:usd:{budget.period}", "usd", float(budget.usd),
                             float(usd), window, left + DAY_S, where,
                             f"budget:{budget.period}", left))  # fmt: skip
    return out


def rate_checks(scope: str, limits: ModelLimits, tokens: float) -> list[Check]:
    out = []
    if limits.rpm is not None:
        out.append(Check(f"{PREFIX}{scope}:rpm", "count", limits.rpm, 1, "minute", MINUTE_TTL_S,
                         scope, "rpm"))  # fmt: skip
    if limits.tpm is not None:
        out.append(Check(f"{PREFIX}{scope}:tpm", "tokens", limits.tpm, tokens, "minute",
                         MINUTE_TTL_S, scope, "tpm"))  # fmt: skip
    if limits.concurrent is not None:
        out.append(Check(f"{PREFIX}{scope}:concurrent", "lease", limits.concurrent, 1, "", 0.0,
                         scope, "concurrent"))  # fmt: skip
    return out
