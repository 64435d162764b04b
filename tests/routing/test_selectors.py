"""The selectors and the route's pick, without I/O: property tests (hypothesis)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.models import ModelConfig
from gateway.policy.routing import BreakerConfig
from gateway.routing import Target, build_route
from gateway.routing.health import Breaker, TargetHealth
from gateway.routing.selectors import SELECTORS, rendezvous


class FakeProvider:
    def __init__(self, name: str) -> None:
        self.name = name

    def supports(self, operation: str) -> bool:
        return True


def targets(weights: list[float], open_mask: list[bool]) -> list[Target]:
    out = []
    for i, (weight, is_open) in enumerate(zip(weights, open_mask, strict=True)):
        health = TargetHealth(f"p{i}", "m", Breaker(BreakerConfig(cooldown_s=60)))
        if is_open:
            health.breaker.open(0.0, 60)
        out.append(Target("alias", FakeProvider(f"p{i}"), "m", health, weight))  # type: ignore[arg-type]
    return out


def route_over(found: list[Target], strategy: str) -> Any:
    config = ModelConfig.model_validate({"strategy": strategy, "targets": [
        {"provider": t.provider.name, "upstream_model": "m", "weight": t.weight} for t in found]})  # fmt: skip
    return build_route("alias", config, found)


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.floats(0.1, 10), min_size=1, max_size=6),
       data=st.data(), strategy=st.sampled_from(sorted(SELECTORS)),
       key=st.one_of(st.none(), st.text(max_size=8)))  # fmt: skip
def test_never_an_open_target_while_a_closed_one_exists(
    weights: list[float], data: Any, strategy: str, key: str | None
) -> None:
    mask = data.draw(st.lists(st.booleans(), min_size=len(weights), max_size=len(weights)))
    found = targets(weights, mask)
    route = route_over(found, strategy)
    for t in found:  # some latency samples and load
        t.health.ewma_s = random.uniform(0.001, 0.2)
        t.health.in_flight = random.randint(0, 3)
    chosen = route.pick("chat", set(), 1.0, key)
    if not all(mask):
        assert chosen.health.breaker.state == "closed"
    else:  # all open: the one due soonest is tried rather than failing outright
        assert chosen in found


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.floats(0.5, 5), min_size=2, max_size=4))
def test_weights_are_respected_in_the_limit(weights: list[float]) -> None:
    found = targets(weights, [False] * len(weights))
    route = route_over(found, "weighted")
    n = 6000
    counts = Counter(route.pick("chat", set(), 1.0, None).provider.name for _ in range(n))
    total = sum(weights)
    for t in found:
        assert abs(counts[t.provider.name] / n - t.weight / total) < 0.04


@settings(max_examples=50, deadline=None)
@given(keys=st.lists(st.text(min_size=1, max_size=12), min_size=20, max_size=60, unique=True))
def test_rendezvous_moves_only_the_removed_targets_keys(keys: list[str]) -> None:
    found = targets([1.0, 1.0, 1.0, 1.0], [False] * 4)
    before = {k: rendezvous(found, k) for k in keys}
    removed = found[1]
    after = {k: rendezvous([t for t in found if t is not removed], k) for k in keys}
    for k in keys:
        if before[k] is not removed:
            assert after[k] is before[k]
