"""What the pipeline calls: `reserve` before the call (429 when a limit or budget is
reached, with OpenAI's `x-ratelimit-*` headers and `Retry-After`), and `settle` once the
request has ended (its real tokens and cost replace the reservation, whatever the
outcome: answered, failed, or abandoned by the client)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from gateway.context import RequestContext
from gateway.errors import QuotaExceeded, RateLimitExceeded, ServiceUnavailable
from gateway.limits import Check, Decision, LimitStore, StoreUnavailable
from gateway.limits.plan import KeyLimits, ScopeCache, checks, scopes
from gateway.policy.limits import ScopeLimits
from gateway.policy.models import ModelConfig, Policy
from gateway.telemetry.cost import IN_PROCESS, TokenUse, library_price, policy_cost

log = logging.getLogger("gateway.limits")


@dataclass(slots=True)
class Reservation:
    store: LimitStore
    request_id: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Limiter:
    """A policy's limits made live: its store and what it needs to plan a request."""

    policy: Policy
    store: LimitStore
    zone: ZoneInfo
    systems: dict[str, str]  # provider name -> gen_ai.provider.name (for list prices)
    degraded: int = 0  # requests let through while the store was down (on_error: open)
    unavailable_since: float | None = None  # the store's outage, for /readyz
    alerted: set[tuple[str, str, float]] = field(default_factory=set)  # (counter, window, share)
    scope_cache: ScopeCache = field(default_factory=dict)  # keys' limits over the defaults

    async def reserve(self, ctx: RequestContext, key: KeyLimits | None,
                      team: ScopeLimits | None, model: str, count_prompt: Callable[[], int],
                      max_tokens: int | None) -> None:  # fmt: skip
        """Reserve what the request may use in every scope it falls under; a refusal is
        a 429 (the request is then not counted)."""
        found = scopes(self.policy, key, ctx.end_user, team, self.scope_cache)
        if not found:
            return
        prompt_tokens = count_prompt()
        settings = self.policy.limits
        output = min(max_tokens or settings.reserve_output_tokens, settings.reserve_output_tokens)
        usd = estimate_usd(self.policy.models.get(model), self.systems, prompt_tokens, output)
        planned = checks(found, model, prompt_tokens + output, usd, ctx.started_unix, self.zone)
        if not planned:
            return
        try:
            decision = await self.store.reserve(ctx.request_id, planned)
        except StoreUnavailable as exc:
            self.unavailable(ctx, exc)
            return
        if self.unavailable_since is not None:
            log.info("limit store available again after %.1f s",
                     time.time() - self.unavailable_since)  # fmt: skip
            self.unavailable_since = None
        reservation = Reservation(self.store, ctx.request_id, rate_headers(planned, decision))
        if not decision.allowed:
            assert decision.failed is not None
            ctx.limit_refused = (decision.failed.scope.split(":", 1)[0], decision.failed.name)
            raise refusal(decision, reservation.headers)
        ctx.limits = reservation
        self.alerts(ctx, planned, decision)

    def alerts(self, ctx: RequestContext, planned: list[Check], decision: Decision) -> None:
        """Budgets this request took past an alert share (`limits.alert_at`): once per
        budget period and share in this process (log line, metric, webhook)."""
        for check, value in zip(planned, decision.values, strict=True):
            if check.kind != "usd":
                continue
            for share in self.policy.limits.alert_at:
                mark = (check.key, check.window, share)
                if value >= share * check.limit and mark not in self.alerted:
                    self.alerted.add(mark)
                    ctx.budget_alerts.append((check.scope, check.name, share))
                    log.warning("budget alert: %s %s at %.0f%% ($%.4f of $%g)", check.scope,
                                check.name, 100 * value / check.limit, value, check.limit,
                                extra={"fields": {"scope": check.scope, "budget": check.name,
                                                  "share": share, "spent_usd": value}})  # fmt: skip

    def unavailable(self, ctx: RequestContext, exc: StoreUnavailable) -> None:
        """`on_error: closed`: 503; `open`: through, counted (the limits are not enforced)."""
        if self.unavailable_since is None:
            self.unavailable_since = time.time()
        if self.policy.store.on_error == "closed":
            log.warning("limit store unavailable: refusing (on_error: closed): %s", exc)
            raise ServiceUnavailable("Rate limits cannot be checked right now (the limit store "
                                     "is unavailable); try again shortly.",
                                     code="limits_unavailable",
                                     headers={"retry-after": "1"})  # fmt: skip
        self.degraded += 1
        ctx.limits_degraded = True
        if self.degraded == 1 or self.degraded % 1000 == 0:
            log.warning("limit store unavailable: letting requests through unenforced "
                        "(on_error: open; %d so far): %s", self.degraded, exc)  # fmt: skip


def estimate_usd(model: ModelConfig | None, systems: dict[str, str], prompt_tokens: int,
                 output: int) -> Decimal:  # fmt: skip
    """The request's price at most: the model's policy price, else its first target's
    list price; unknown: 0 (the budget counts the real cost when the request ends)."""
    if model is None:
        return Decimal(0)
    use = TokenUse(prompt_tokens, output)
    if model.price is not None:
        return policy_cost(use, model.price).total
    target = model.resolved_targets[0]
    system = systems.get(target.provider, "")
    found = None if system in IN_PROCESS else library_price(system, target.upstream_model)
    if found is None or found[1] is None:
        return Decimal(0)
    return policy_cost(use, found[1]).total


def refusal(decision: Decision, headers: list[tuple[bytes, bytes]]) -> Exception:
    check = decision.failed
    assert check is not None
    retry = max(1, round(decision.reset_s(check)))
    extra = {k.decode(): v.decode() for k, v in headers}
    extra["retry-after"] = str(retry)
    where = check.scope.replace(":model:", " for model ")
    if check.kind == "usd":
        return QuotaExceeded(f"The {check.name.split(':')[1]}ly budget of ${check.limit:g} for "
                             f"{where} is spent; it resets in {duration(retry)}.",
                             headers=extra)  # fmt: skip
    what = {"rpm": "requests per minute", "tpm": "tokens per minute",
            "concurrent": "concurrent requests"}[check.name]  # fmt: skip
    return RateLimitExceeded(f"Rate limit reached for {where}: {check.limit:g} {what}. "
                             f"Try again in {duration(retry)}.",
                             kind="tokens" if check.kind == "tokens" else "requests",
                             headers=extra)  # fmt: skip


def rate_headers(planned: list[Check], decision: Decision) -> list[tuple[bytes, bytes]]:
    """OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: for each, the
    tightest of the request's rpm (tpm) counters."""
    out: list[tuple[bytes, bytes]] = []
    values = decision.values if decision.allowed else []
    for name, suffix in (("rpm", b"requests"), ("tpm", b"tokens")):
        pairs = [(c, values[i] if i < len(values) else None) for i, c in enumerate(planned)
                 if c.name == name]  # fmt: skip
        if not pairs:
            continue
        if not decision.allowed and decision.failed is not None and decision.failed.name == name:
            check, remaining = decision.failed, 0.0
        else:
            check, used = min(pairs, key=lambda p: p[0].limit - (p[1] or 0))
            remaining = max(0.0, check.limit - (used or 0))
        out += [
            (b"x-ratelimit-limit-" + suffix, b"%d" % check.limit),
            (b"x-ratelimit-remaining-" + suffix, b"%d" % remaining),
            (b"x-ratelimit-reset-" + suffix, duration(decision.reset_s(check)).encode()),
        ]
    return out


def duration(seconds: float) -> str:
    """OpenAI's reset format: `6m0s`, `1s`, `120ms`."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    out = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    return out + (f"{minutes}m" if minutes else "") + f"{rest}s"


def actual_usage(ctx: RequestContext, cached_weight: float) -> tuple[float, float]:
    """(tokens, usd) the request really used: input (cached input weighted) + output."""
    tokens = 0.0
    if ctx.tokens is not None:
        use = ctx.tokens
        tokens = use.input - use.cached_input * (1 - cached_weight) + use.output
    usd = float(ctx.cost.total) if ctx.cost is not None else 0.0
    return tokens, usd
