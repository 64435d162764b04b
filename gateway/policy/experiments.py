"""The `feedback:` and `experiments:` sections: the metrics clients may report on a
request, and the prompt experiments that split traffic between versions."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.policy.base import Strict

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class FeedbackMetric(Strict):
    """`boolean` (true/false), `float` (within `min`..`max` when given) or `category`
    (one of `categories`); `direction` says which way is better."""

    type: Literal["boolean", "float", "category"]
    direction: Literal["max", "min"] = "max"
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackMetric:
        if self.type != "float" and (self.min is not None or self.max is not None):
            raise ValueError("min/max bound float metrics only")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        if self.type == "category" and len(self.categories) < 2:
            raise ValueError("a category metric lists its categories (two or more)")
        if self.type != "category" and self.categories:
            raise ValueError("categories belong to category metrics only")
        return self


class FeedbackConfig(Strict):
    metrics: dict[str, FeedbackMetric] = Field(default_factory=dict)
    max_comment_chars: int = Field(default=2000, ge=0)
    # requests remembered in memory for feedback (older ones are looked up in the log)
    recent_requests: int = Field(default=100_000, ge=0)

    @field_validator("metrics")
    @classmethod
    def _names(cls, metrics: dict[str, FeedbackMetric]) -> dict[str, FeedbackMetric]:
        bad = [name for name in metrics if not re.match(NAME, name)]
        if bad:
            raise ValueError(f"metric names are letters, digits, _ . - (got {bad[0]!r})")
        return metrics


class ExperimentConfig(Strict):
    """A prompt's versions (or labels) as arms, with their traffic shares."""

    prompt: str
    arms: dict[str, float] = Field(min_length=2)  # arm (a version or a label) -> share
    # sticky by the request's `user` (else its metadata.session_id), or with `session` by
    # metadata.session_id (else x-gateway-session); random when there is none
    unit: Literal["user", "session", "request"] = "user"
    metric: str
    min_samples: int = Field(default=200, ge=1)  # per arm, before a verdict
    allocation: Literal["fixed", "thompson"] = "fixed"
    floor: float = Field(default=0.05, ge=0, le=0.5)  # thompson: each arm keeps this share
    control: str | None = None  # the arm others are compared to (default: the first)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)  # the report's significance level
    refresh_s: float = Field(default=10.0, ge=0.05, le=3600)  # thompson: feedback re-read

    @field_validator("arms", mode="before")
    @classmethod
    def _arm_names_are_text(cls, value: object) -> object:
        """YAML reads `3: 0.5` with an integer key: arms are named as text."""
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("arms")
    @classmethod
    def _positive(cls, arms: dict[str, float]) -> dict[str, float]:
        for arm, share in arms.items():
            if not share > 0:
                raise ValueError(f"arm {arm!r}: a share must be above 0")
        return arms

    @model_validator(mode="after")
    def _control_is_an_arm(self) -> ExperimentConfig:
        if self.control is not None and self.control not in self.arms:
            raise ValueError(f"control {self.control!r} is not one of the arms")
        if self.allocation == "thompson" and self.floor * len(self.arms) > 1:
            raise ValueError(f"floor {self.floor:g} x {len(self.arms)} arms is over 1")
        return self

    @property
    def shares(self) -> dict[str, float]:
        """The arms' shares, normalised to sum to 1."""
        total = sum(self.arms.values())
        return {arm: share / total for arm, share in self.arms.items()}

    @property
    def control_arm(self) -> str:
        return self.control if self.control is not None else next(iter(self.arms))
