"""Which target next: the `Selector` implementations, keyed by the policy's `strategy`,
and rendezvous hashing for sticky users and shared prompt prefixes. Each gets only the
targets that may take traffic now (the loop filters out open breakers and the excluded)."""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from collections.abc import Sequence
from typing import Protocol

from gateway.routing.target import Target

EXPLORE = 0.02  # latency: a share of picks at random, so a target's EWMA never goes stale
TOLERANCE = 1.25  # latency: costs within 25% of the best count as equal (then: by weight)


class Selector(Protocol):
    def choose(self, targets: Sequence[Target]) -> Target: ...


class Weighted:
    """Random, in proportion to the weights."""

    def choose(self, targets: Sequence[Target]) -> Target:
        if len(targets) == 1:
            return targets[0]
        return random.choices(targets, weights=[t.weight for t in targets])[0]


class Ordered:
    """The first that may take traffic, in the policy's order."""

    def choose(self, targets: Sequence[Target]) -> Target:
        return targets[0]


class LeastBusy:
    """Fewest requests in flight (ties by weight)."""

    def choose(self, targets: Sequence[Target]) -> Target:
        fewest = min(t.health.in_flight for t in targets)
        return Weighted().choose([t for t in targets if t.health.in_flight == fewest])


class Latency:
    """Power of two choices (Finagle, Linkerd, Envoy) over the peak-EWMA of time to first
    byte times (in flight + 1), divided by the weight; a target without samples counts as
    the fleet's median. Up to four targets all are compared (two random ones of three
    would send a third of the traffic past the fastest). Costs within 25% of the best are
    a tie, split by weight: peak EWMAs of equally fast targets differ by noise (the
    busier one sees more peaks), and chasing that noise would starve one of them."""

    def choose(self, targets: Sequence[Target]) -> Target:
        if len(targets) == 1:
            return targets[0]
        if random.random() < EXPLORE:
            return Weighted().choose(targets)
        known = [t.health.ewma_s for t in targets if t.health.ewma_s is not None]
        median = statistics.median(known) if known else 0.0
        pool = targets if len(targets) <= 4 else random.sample(list(targets), 2)
        costs = [cost(t, median) for t in pool]
        best = min(costs)
        return Weighted().choose([t for t, c in zip(pool, costs, strict=True)
                                  if c <= best * TOLERANCE])  # fmt: skip


def cost(target: Target, median: float) -> float:
    ewma = target.health.ewma_s if target.health.ewma_s is not None else median
    return ewma * (target.health.in_flight + 1) / target.weight


SELECTORS: dict[str, Selector] = {
    "weighted": Weighted(), "ordered": Ordered(), "least_busy": LeastBusy(), "latency": Latency(),
}  # fmt: skip


MASK = (1 << 64) - 1


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit value from (key hash ^ target seed)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def rendezvous(targets: Sequence[Target], key: str) -> Target:
    """Weighted rendezvous hashing: each (key, target) pair scores -weight / ln(u); the
    highest wins, so removing a target moves only the keys that were on it. One hash of
    the key, mixed with each target's seed (the same in every replica)."""
    h = hash64(key)

    def score(target: Target) -> float:
        u = (mix(h ^ target.seed) + 1) / (2**64 + 2)  # in (0, 1)
        return -target.weight / math.log(u)

    return max(targets, key=score)
