"""A prompt file (`prompts/*.yaml` in the policy directory): a name, its immutable
versions, and labels that point at versions (or at an experiment)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from gateway.policy.base import Strict

PROMPT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
RESERVED_LABELS = frozenset({"latest", "experiment"})
# the request carries these itself: a version cannot fix them
NOT_PARAMS = frozenset({"model", "messages", "stream", "stream_options", "metadata", "user"})


class PromptMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str  # a Jinja2 template
    name: str | None = None


class PromptVersion(Strict):
    version: int = Field(ge=1)
    messages: tuple[PromptMessage, ...] = Field(min_length=1)
    # JSON Schema per variable; a variable the templates use without `| default(...)`
    # (and without a schema `default`) is required
    variables: dict[str, dict[str, Any]] = Field(default_factory=dict)
    model: str = Field(min_length=1)  # a model alias of the policy
    params: dict[str, Any] = Field(default_factory=dict)  # temperature, max_tokens, ...
    # request parameters that may replace the version's (default: the prompt's list)
    overridable: tuple[str, ...] | None = None
    description: str | None = None

    @field_validator("params")
    @classmethod
    def _not_request_fields(cls, params: dict[str, Any]) -> dict[str, Any]:
        fixed = sorted(NOT_PARAMS & params.keys())
        if fixed:
            raise ValueError(f"{fixed[0]!r} is not a parameter a version can set")
        return params


class PromptFile(Strict):
    name: str = Field(pattern=PROMPT_NAME)
    description: str | None = None
    versions: tuple[PromptVersion, ...] = Field(min_length=1)
    # label -> a version number, or the name of an experiment on this prompt
    labels: dict[str, int | str] = Field(default_factory=dict)
    overridable: tuple[str, ...] = ()  # request parameters that replace a version's

    def errors(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Versions defined twice, labels that are reserved or point at no version."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        numbers = [v.version for v in self.versions]
        for i, number in enumerate(numbers):
            if number in numbers[:i]:
                found.append((("versions", i, "version"), f"version {number} is defined twice"))
        for label, target in self.labels.items():
            if label in RESERVED_LABELS or label.isdigit():
                found.append((("labels", label), f"label {label!r} is reserved (version "
                                                 "numbers, latest, experiment)"))  # fmt: skip
            elif isinstance(target, int) and target not in numbers:
                found.append((("labels", label), f"label {label!r} points at version {target}, "
                                                 "which is not defined"))  # fmt: skip
        return found

    def version(self, number: int) -> PromptVersion | None:
        return next((v for v in self.versions if v.version == number), None)

    @property
    def latest(self) -> PromptVersion:
        return max(self.versions, key=lambda v: v.version)
