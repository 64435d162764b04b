"""A place a model alias can go: a provider, the model name it knows, its weight, and
the health object the loop updates (shared by every alias naming the same pair)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.providers.base import Provider
from gateway.routing.health import TargetHealth


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    alias: str
    provider: Provider
    upstream_model: str
    health: TargetHealth
    weight: float = 1.0
    context_length: int | None = None

    @property
    def name(self) -> str:
        return f"{self.provider.name}/{self.upstream_model}"

    @property
    def seed(self) -> int:
        """The target's rendezvous-hashing seed: a hash of its name, made once."""
        return self.health.seed
