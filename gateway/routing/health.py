"""One object per target (provider + upstream model) that the fallback loop updates:
in-flight count, a peak-EWMA of time to first byte, the circuit breaker, and what the
upstream's own rate-limit headers said. Per process (as Envoy's outlier detection)."""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.policy.routing import BreakerConfig

DECAY_S = 10.0  # the EWMA's time constant: a sample 10 s old weighs 1/e
BreakerState = Literal["closed", "open", "half_open"]
STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}
RESET = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
RATE_LIMIT_HEADERS = (("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
                      ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"))  # fmt: skip


def duration_s(text: str) -> float | None:
    """OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s"; or plain seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = RESET.findall(text)
    return sum(float(n) * UNIT_S[u] for n, u in parts) if parts else None


@dataclass
class Breaker:
    """closed -> (failure ratio over the window, or a 429 with Retry-After) -> open ->
    (cooldown) -> half_open: one probe -> closed on success, open again (cooldown doubled,
    capped) on failure."""

    config: BreakerConfig
    state: BreakerState = "closed"
    until: float = 0.0  # open: no traffic before this (monotonic)
    cooldown: float = 0.0
    probing: bool = False
    # the window as one-second buckets [second, requests, failures], with running sums:
    # O(1) a request and O(window_s) memory whatever the traffic
    buckets: deque[list[int]] = field(default_factory=deque)
    total: int = 0
    failures: int = 0

    def __post_init__(self) -> None:
        self.cooldown = self.config.cooldown_s

    def allows(self, now: float) -> bool:
        if self.state == "open" and now >= self.until:
            self.state, self.probing = "half_open", False
        return self.state == "closed" or (self.state == "half_open" and not self.probing)

    def record(self, ok: bool, now: float) -> None:
        if self.state == "open":  # tried anyway (every target was open): success closes it
            if ok:
                self.state, self.cooldown = "closed", self.config.cooldown_s
            return
        if self.state == "half_open":
            if ok:
                self.state, self.cooldown = "closed", self.config.cooldown_s
                self.clear()
            else:
                self.cooldown = min(self.cooldown * 2, self.config.max_cooldown_s)
                self.open(now, self.cooldown)
            self.probing = False
            return
        self.count(now, ok)
        if (self.state == "closed" and self.total >= self.config.min_requests
                and self.failures / self.total >= self.config.failure_ratio):  # fmt: skip
            self.open(now, self.cooldown)

    def count(self, now: float, ok: bool) -> None:
        second = int(now)
        if not self.buckets or self.buckets[-1][0] != second:
            self.buckets.append([second, 0, 0])
        bucket = self.buckets[-1]
        bucket[1] += 1
        bucket[2] += not ok
        self.total += 1
        self.failures += not ok
        while self.buckets[0][0] <= now - self.config.window_s - 1:
            _, total, failures = self.buckets.popleft()
            self.total -= total
            self.failures -= failures

    def clear(self) -> None:
        self.buckets.clear()
        self.total = self.failures = 0

    def open(self, now: float, for_s: float) -> None:
        self.state, self.until = "open", max(self.until, now + for_s)
        self.clear()


@dataclass
class TargetHealth:
    provider: str
    upstream_model: str
    breaker: Breaker
    in_flight: int = 0
    ewma_s: float | None = None
    sampled_at: float = 0.0
    steer_until: float = 0.0  # the upstream's rate-limit headers said it is spent until then
    requests: int = 0
    failures: int = 0
    seed: int = 0  # rendezvous hashing (selectors.py): from the name, same in every replica

    def __post_init__(self) -> None:
        digest = hashlib.blake2b(self.name.encode(), digest_size=8).digest()
        self.seed = int.from_bytes(digest, "big")

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.upstream_model}"

    def available(self, now: float) -> bool:
        return now >= self.steer_until and self.breaker.allows(now)

    def due(self, now: float) -> float:
        """When this target takes traffic again (0: now)."""
        return max(self.steer_until, self.breaker.until if self.breaker.state == "open" else 0)

    def started(self) -> None:
        self.in_flight += 1
        self.requests += 1
        if self.breaker.state == "half_open":  # this request is the one probe
            self.breaker.probing = True

    def finished(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def latency(self, seconds: float, now: float) -> None:
        """Peak EWMA: a slower sample counts at once, faster ones decay in by time."""
        if self.ewma_s is None or seconds > self.ewma_s:
            self.ewma_s = seconds
        else:
            w = math.exp(-(now - self.sampled_at) / DECAY_S)
            self.ewma_s = self.ewma_s * w + seconds * (1 - w)
        self.sampled_at = now

    def succeeded(self, now: float, headers: dict[str, str] | None = None) -> None:
        self.breaker.record(True, now)
        if headers:
            self.read_rate_limits(headers, now)

    def failed(self, now: float, retry_after_s: float | None = None) -> None:
        self.failures += 1
        self.breaker.record(False, now)
        if retry_after_s is not None and retry_after_s > 0:  # a 429 that says how long
            self.breaker.open(now, retry_after_s)

    def read_rate_limits(self, headers: dict[str, str], now: float) -> None:
        """`x-ratelimit-remaining-requests: 0` (or tokens: 0) with its reset: steer away
        until then, before the upstream starts answering 429."""
        for remaining_name, reset_name in RATE_LIMIT_HEADERS:
            remaining = headers.get(remaining_name)
            if remaining is None or remaining.strip() not in ("0", "0.0"):
                continue
            reset = duration_s(headers.get(reset_name, "1s")) or 1.0
            self.steer_until = max(self.steer_until, now + reset)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        self.breaker.allows(now)  # an open breaker past its cooldown shows as half_open
        breaker = self.breaker
        ratio = breaker.failures / breaker.total if breaker.total else 0.0
        return {
            "provider": self.provider, "upstream_model": self.upstream_model,
            "ewma_ms": round(self.ewma_s * 1000, 3) if self.ewma_s is not None else None,
            "in_flight": self.in_flight, "error_ratio": round(ratio, 3),
            "breaker": self.breaker.state,
            "open_for_s": round(max(0.0, self.breaker.until - now), 3)
            if self.breaker.state == "open" else 0.0,
            "rate_limited_for_s": round(max(0.0, self.steer_until - now), 3),
            "requests": self.requests, "failures": self.failures,
        }  # fmt: skip
