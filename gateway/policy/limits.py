"""Budgets and rate limits (`teams:`, `keys_defaults:`, `end_users:`, `limits:` and a key's
own), and the shared `store:` that keeps their counters (and API-made keys)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from gateway.policy.base import Strict


class ModelLimits(Strict):
    rpm: int | None = Field(default=None, ge=1)  # requests a calendar minute
    tpm: int | None = Field(default=None, ge=1)  # tokens (input + output) a calendar minute
    concurrent: int | None = Field(default=None, ge=1)  # requests in flight


class Limits(ModelLimits):
    models: dict[str, ModelLimits] = Field(default_factory=dict)  # per model, within the scope

    def merged_over(self, defaults: Limits) -> Limits:
        """These limits, with `defaults` filling what they leave unset."""
        return Limits.model_construct(  # (both validated already: ~5 us a request saved)
            rpm=self.rpm if self.rpm is not None else defaults.rpm,
            tpm=self.tpm if self.tpm is not None else defaults.tpm,
            concurrent=self.concurrent if self.concurrent is not None else defaults.concurrent,
            models={**defaults.models, **self.models},
        )


class Budget(Strict):
    usd: Decimal = Field(gt=0)
    period: Literal["day", "week", "month"]
    model: str | None = None  # only this model's spend (default: every model)


class ScopeLimits(Strict):
    budgets: tuple[Budget, ...] = ()
    limits: Limits = Limits()


class TeamConfig(ScopeLimits):
    models: tuple[str, ...] = ()  # names or globs the team's keys may use (empty: all)
    metadata: dict[str, str] = Field(default_factory=dict)


class LimitSettings(Strict):
    """How limits count: the calendar's time zone, cached input tokens' weight in tpm,
    how many output tokens a request without max_tokens reserves, budget alerts."""

    timezone: str = "UTC"
    cached_input_weight: float = Field(default=1.0, ge=0, le=1)
    reserve_output_tokens: int = Field(default=1024, ge=1)  # max_tokens is capped by it too
    alert_at: tuple[float, ...] = (0.8,)  # shares of a budget that log, count and call
    alert_webhook: str | None = None  # POSTed {"scope", "budget", "spent_usd", "share"}
    lease_s: float = Field(
        default=600, gt=0
    )  # a concurrency lease outlives a dead replica this long
    reservation_ttl_s: float = Field(default=900, gt=0)  # unsettled reservations are swept after

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Paris)"
            ) from None
        return value


class StoreConfig(Strict):
    """Where counters, API-made keys and teams live: `embedded` (files shared by the
    `--workers N` of one machine: LMDB counters, SQLite records) or `redis` (replicas)."""

    type: Literal["embedded", "redis"] = "embedded"
    url: str | None = None  # redis: redis://, rediss:// or unix://
    # embedded: the folder of gateway-state.db (keys, teams, audit) and gateway-limits.lmdb
    # (counters); default: the request log's folder, else the working directory
    path: str | None = None
    on_error: Literal["closed", "open"] = "closed"  # store unreachable: 503, or let requests by
    timeout_ms: float = Field(default=100, gt=0, le=10_000)

    @field_validator("url", "path", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value
