"""Which arm of an experiment a request gets. A unit (a user, a session) is hashed with
the experiment's name to a point in [0, 1), and the arms' shares cut that interval: the
same unit lands on the same arm in every process and after every restart, as long as
the shares stand. `fixed` keeps the policy's shares; `thompson` moves them toward the
arm most likely to be best on the feedback so far (probability matching), never below
`floor` per arm."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

import numpy as np

from gateway.policy.experiments import ExperimentConfig, FeedbackMetric
from gateway.prompts import ArmStats

DRAWS = 4000  # posterior samples per arm when thompson recomputes its shares


def unit_point(experiment: str, unit: str | None) -> float:
    """Where a unit falls in [0, 1): a hash of the experiment and the unit (random
    when the request names no unit)."""
    if unit is None:
        return random.random()
    digest = hashlib.sha256(f"{experiment}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_arm(shares: Mapping[str, float], point: float) -> str:
    """The arm whose slice of [0, 1) holds `point` (arms in the policy's order)."""
    edge = 0.0
    arm = ""
    for arm, share in shares.items():
        edge += share
        if point < edge:
            return arm
    return arm  # (rounding at the top edge)


class FixedAllocator:
    def __init__(self, config: ExperimentConfig, metric: FeedbackMetric) -> None:
        self._shares = config.shares

    def shares(self) -> dict[str, float]:
        return self._shares

    def update(self, stats: dict[str, ArmStats]) -> None:
        """Fixed shares do not follow the feedback."""


class ThompsonAllocator:
    """Shares = the posterior probability that each arm is the best one, mixed with the
    floor: boolean metrics on Beta(1 + successes, 1 + failures), float metrics on the
    normal approximation of the mean (an arm with fewer than two values: flat)."""

    def __init__(self, config: ExperimentConfig, metric: FeedbackMetric) -> None:
        self.config, self.metric = config, metric
        self.arms = list(config.arms)
        seed = int.from_bytes(hashlib.sha256(config.prompt.encode()).digest()[:8], "big")
        self.rng = np.random.default_rng(seed)  # replicas with equal feedback agree
        self.stats: dict[str, ArmStats] = {}
        self._shares = config.shares  # until there is feedback

    def shares(self) -> dict[str, float]:
        return self._shares

    def update(self, stats: dict[str, ArmStats]) -> None:
        self.stats = dict(stats)
        if not any(s.n for s in stats.values()):
            return
        best = self.probability_best()
        floor = self.config.floor
        self._shares = {arm: floor + (1 - floor * len(self.arms)) * best[arm]
                        for arm in self.arms}  # fmt: skip

    def probability_best(self) -> dict[str, float]:
        draws = np.stack([self._posterior(self.stats.get(arm, ArmStats())) for arm in self.arms])
        if self.metric.direction == "min":
            draws = -draws
        wins = np.bincount(draws.argmax(axis=0), minlength=len(self.arms))
        return {arm: float(w) / DRAWS for arm, w in zip(self.arms, wins, strict=True)}

    def _posterior(self, stats: ArmStats) -> np.ndarray:
        if self.metric.type == "boolean":
            return self.rng.beta(1 + stats.total, 1 + stats.n - stats.total, DRAWS)
        low, high = self.metric.min, self.metric.max
        spread = (high - low) if low is not None and high is not None else 1e6
        if stats.n < 2:
            centre = (low + high) / 2 if low is not None and high is not None else 0.0
            return self.rng.normal(centre, spread, DRAWS)
        mean = stats.total / stats.n
        variance = max(stats.total_sq / stats.n - mean * mean, 0.0) * stats.n / (stats.n - 1)
        return self.rng.normal(mean, max(np.sqrt(variance / stats.n), 1e-9), DRAWS)
