"""Retry policy as data, and the arithmetic around it: backoff with full jitter, the
upstream's Retry-After, and a per-model retry budget (Finagle's: a share of the recent
requests, with a floor a second) so that a dead upstream is not hammered by every
client's retries."""

from __future__ import annotations

import email.utils
import random
import time
from collections import deque

from gateway.policy.routing import RetryConfig

BUDGET_WINDOW_S = 10.0


def backoff_s(config: RetryConfig, retry: int) -> float:
    """Full jitter (AWS's): uniform over [0, min(max_backoff, backoff * 2^retry)]."""
    return random.uniform(0, min(config.max_backoff_s, config.backoff_s * 2**retry))


def retry_after_s(headers: dict[str, str]) -> float | None:
    """`retry-after-ms` (OpenAI, Azure) or `retry-after` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RetryBudget:
    """Retries allowed in the last 10 s: `ratio` of the requests plus `min_per_s` a second."""

    def __init__(self, ratio: float, min_per_s: float) -> None:
        self.ratio, self.min_per_s = ratio, min_per_s
        self.requests: deque[float] = deque()
        self.retries: deque[float] = deque()
        self.exhausted = 0

    def _trim(self, now: float) -> None:
        for events in (self.requests, self.retries):
            while events and events[0] < now - BUDGET_WINDOW_S:
                events.popleft()

    def request(self, now: float) -> None:
        self.requests.append(now)
        if self.requests[0] < now - BUDGET_WINDOW_S:  # amortised: the window stays bounded
            self._trim(now)

    def try_retry(self, now: float) -> bool:
        self._trim(now)
        allowed = self.ratio * len(self.requests) + self.min_per_s * BUDGET_WINDOW_S
        if len(self.retries) + 1 > allowed:
            self.exhausted += 1
            return False
        self.retries.append(now)
        return True
