"""The routing part of a model's policy: its targets and how one is chosen, retries,
timeouts, typed fallbacks and the circuit breaker."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails

from gateway.policy.base import Strict

Strategy = Literal["weighted", "latency", "least_busy", "ordered"]
Trigger = Literal["rate_limit", "server_error", "timeout", "unreachable", "context_window",
                  "content_policy"]  # fmt: skip
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)
# a plain alias under `fallbacks:` is tried on every upstream failure (as before)
UPSTREAM_FAILURES: tuple[Trigger, ...] = ("rate_limit", "server_error", "timeout", "unreachable")


class TargetConfig(Strict):
    provider: str
    upstream_model: str
    weight: float = Field(default=1.0, gt=0)
    # the target's context window in tokens: a prompt estimated over it skips the target
    context_length: int | None = Field(default=None, ge=1)


class RetryConfig(Strict):
    attempts: int = Field(default=0, ge=0, le=10)  # retries after the first try
    backoff_s: float = Field(default=0.25, ge=0)  # full jitter: uniform(0, backoff * 2^n)
    max_backoff_s: float = Field(default=8.0, ge=0)
    honor_retry_after: bool = True  # Retry-After / retry-after-ms, up to max_wait_s
    max_wait_s: float = Field(default=10.0, ge=0)
    # the model's retries in the last 10 s: at most this share of its requests...
    budget_ratio: float = Field(default=0.2, ge=0, le=10)
    budget_min_per_s: float = Field(default=3.0, ge=0)  # ...but always this many a second


class TimeoutsConfig(Strict):
    connect_s: float | None = Field(default=None, gt=0)  # default: the provider's
    first_chunk_s: float | None = Field(default=None, gt=0)  # streams: to the first content
    between_chunks_s: float | None = Field(default=None, gt=0)  # streams, once committed
    total_s: float | None = Field(default=None, gt=0)  # the whole call, every attempt


class FallbackConfig(Strict):
    model: str
    on: tuple[Trigger, ...] = UPSTREAM_FAILURES

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_is_a_key(cls, data: Any) -> Any:
        """YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true."""
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data


class BreakerConfig(Strict):
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    min_requests: int = Field(default=5, ge=1)
    window_s: float = Field(default=30.0, gt=0)
    cooldown_s: float = Field(default=15.0, gt=0)
    max_cooldown_s: float = Field(default=300.0, gt=0)  # the doubling stops here


class RoutingConfig(Strict):
    """Shared by `models.<name>`: `provider` + `upstream_model` (one target), or `targets`."""

    provider: str | None = None
    upstream_model: str | None = None
    targets: tuple[TargetConfig, ...] = ()
    strategy: Strategy = "weighted"
    sticky: Literal["user"] | None = None  # `user` (or x-gateway-session) keeps its target
    affinity: Literal["prefix"] | None = None  # one prompt prefix keeps its target
    retry: RetryConfig = RetryConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    fallbacks: tuple[FallbackConfig, ...] = ()  # a plain alias: on every upstream failure
    circuit_breaker: BreakerConfig = BreakerConfig()

    @model_validator(mode="before")
    @classmethod
    def _one_target_needs_both_keys(cls, data: Any) -> Any:
        """Without `targets`, `provider` and `upstream_model` are required: reported as
        missing keys, with their paths, beside every other error."""
        if isinstance(data, dict) and not data.get("targets"):
            missing = [k for k in ("provider", "upstream_model") if data.get(k) is None]
            if missing:
                errors = [InitErrorDetails(type="missing", loc=(k,), input=data) for k in missing]
                raise ValidationError.from_exception_data(cls.__name__, errors)
        return data

    @model_validator(mode="after")
    def _one_way_to_name_targets(self) -> RoutingConfig:
        single = self.provider is not None or self.upstream_model is not None
        if single and self.targets:
            raise ValueError("give either provider/upstream_model or targets, not both")
        return self  # neither: a missing key, reported with its path by the policy's checks

    @property
    def resolved_targets(self) -> tuple[TargetConfig, ...]:
        if self.targets:
            return self.targets
        if self.provider is None or self.upstream_model is None:
            return ()  # refused at load (cross_reference_errors)
        return (TargetConfig(provider=self.provider, upstream_model=self.upstream_model),)

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _aliases_are_rules(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"model": f} if isinstance(f, str) else f for f in value]
        return value

    @property
    def fallback_rules(self) -> tuple[FallbackConfig, ...]:
        return self.fallbacks
