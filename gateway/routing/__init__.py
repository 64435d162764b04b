"""Routing: which target a request goes to, and what happens when it fails.

A `Route` is one model alias made live: its targets (each with the `TargetHealth` the
loop updates), the `Selector` its `strategy` names (`selectors.py`), its retry policy and
budget (`retry.py`), timeouts, and typed fallbacks (`triggers.py` says which failure is
which). `gateway/pipeline.py`'s `call_provider` is the loop that uses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.policy.models import ModelConfig
from gateway.policy.routing import Trigger
from gateway.providers.base import Operation, UnsupportedOperation
from gateway.routing import triggers
from gateway.routing.health import Breaker, TargetHealth
from gateway.routing.retry import RetryBudget
from gateway.routing.selectors import SELECTORS, Selector, rendezvous
from gateway.routing.target import Target
from gateway.routing.triggers import ContextWindowExceeded

__all__ = ["RETRIED", "Route", "Target", "TargetHealth", "build_route", "new_health", "triggers"]
RETRIED: frozenset[Trigger] = frozenset({"rate_limit", "server_error", "timeout", "unreachable"})


@dataclass
class Route:
    model: str
    config: ModelConfig
    targets: list[Target]
    selector: Selector
    budget: RetryBudget = field(init=False)

    refusal_fails: bool = field(init=False)  # a content_policy fallback: refusals fail over
    limited: bool = field(init=False)  # a target declares a context window: count prompts

    def __post_init__(self) -> None:
        retry = self.config.retry
        self.budget = RetryBudget(retry.budget_ratio, retry.budget_min_per_s)
        self.refusal_fails = any("content_policy" in r.on for r in self.config.fallback_rules)
        self.limited = any(t.context_length is not None for t in self.targets)

    def pick(self, operation: Operation, excluded: set[Target], now: float, key: str | None,
             prompt_tokens: int | None = None) -> Target:  # fmt: skip
        """The next target: among those that serve the operation and fit the prompt and
        have not failed yet (all again once each has), those whose breaker lets traffic
        through; if none does, the one due soonest."""
        if len(self.targets) == 1 and prompt_tokens is None:  # nothing to choose: ~2 us
            only = self.targets[0]
            if only.provider.supports(operation):
                return only
        able = [t for t in self.targets if t.provider.supports(operation)]
        if not able:
            raise UnsupportedOperation(
                f"model {self.model!r} does not support {operation}", param="model"
            )
        fits = [t for t in able if prompt_tokens is None or t.context_length is None
                or prompt_tokens <= t.context_length]  # fmt: skip
        if not fits:
            raise ContextWindowExceeded(
                f"The prompt (~{prompt_tokens} tokens) is over the context window of every "
                f"target of model {self.model!r}.", param="messages")  # fmt: skip
        pool = [t for t in fits if t not in excluded] or fits
        ready = [t for t in pool if t.health.available(now)]
        if not ready:
            return min(pool, key=lambda t: t.health.due(now))
        return rendezvous(ready, key) if key is not None else self.selector.choose(ready)

    def fallback(self, trigger: Trigger, tried: set[str]) -> str | None:
        for rule in self.config.fallback_rules:
            if trigger in rule.on and rule.model not in tried:
                return rule.model
        return None

    def affinity_key(self, body: dict[str, Any], session: str | None) -> str | None:
        """`sticky: user`: the client's `user` (or `x-gateway-session`); `affinity:
        prefix`: a hash of the system and developer messages and the tools."""
        if self.config.sticky == "user":
            user = body.get("user")
            found = session or (user if isinstance(user, str) and user else None)
            if found is not None:
                return "user:" + found
        if self.config.affinity == "prefix":
            return "prefix:" + prefix_hash(body)
        return None

    def snapshot(self, now: float) -> dict[str, Any]:
        return {"model": self.model, "strategy": self.config.strategy,
                "targets": [{**t.health.snapshot(now), "weight": t.weight}
                            for t in self.targets]}  # fmt: skip


def prefix_hash(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    head: list[Any] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer"):
            break
        head.append(message)
    data = orjson.dumps([head, body.get("tools")], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def build_route(model: str, config: ModelConfig, targets: Sequence[Target]) -> Route:
    return Route(model, config, list(targets), SELECTORS[config.strategy])


def new_health(provider: str, upstream_model: str, config: ModelConfig) -> TargetHealth:
    return TargetHealth(provider, upstream_model, Breaker(config.circuit_breaker))
