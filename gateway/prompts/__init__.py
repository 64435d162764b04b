"""Prompts as code: versioned templates (`registry`, `render`, `lock`), resolved on the
request path (`stage`), and experiments that split traffic between versions. How an
experiment shares its traffic is an `Allocator`, chosen by the policy's `allocation`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.policy.experiments import ExperimentConfig, FeedbackMetric

PROMPT_PREFIX = "prompt:"


def is_prompt_ref(model: object) -> bool:
    return isinstance(model, str) and model.startswith(PROMPT_PREFIX)


@dataclass(frozen=True, slots=True)
class ArmStats:
    """An arm's feedback on the experiment's metric so far: count, sum, sum of squares."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0


class Allocator(Protocol):
    def shares(self) -> dict[str, float]:
        """Each arm's share of new units now (they sum to 1)."""
        ...

    def update(self, stats: dict[str, ArmStats]) -> None:
        """The arms' feedback totals, read again from the request log."""
        ...


def build_allocator(config: ExperimentConfig, metric: FeedbackMetric) -> Allocator:
    from gateway.prompts.assign import FixedAllocator, ThompsonAllocator

    registry: dict[str, Callable[[ExperimentConfig, FeedbackMetric], Allocator]] = {
        "fixed": FixedAllocator,
        "thompson": ThompsonAllocator,
    }
    return registry[config.allocation](config, metric)
