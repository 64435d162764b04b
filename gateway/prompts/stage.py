"""What the pipeline calls for `model: "prompt:NAME@REF"`: pick the version (a label, a
number, `latest`, or an experiment's arm), render it with the request's variables, and
turn the request into a plain one for the version's model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.context import RequestContext
from gateway.errors import InvalidRequest, NotFound
from gateway.policy.experiments import ExperimentConfig
from gateway.policy.models import Policy
from gateway.prompts import PROMPT_PREFIX, Allocator, build_allocator
from gateway.prompts.assign import pick_arm, unit_point
from gateway.prompts.config import PromptFile
from gateway.prompts.registry import PromptRegistry, arm_version
from gateway.prompts.render import CompiledVersion
from gateway.requests import SPAN_PARAMS, ParsedRequest

VARIABLES_HEADER = "x-gateway-prompt-variables"
SESSION_HEADER = "x-gateway-session"


@dataclass
class Experiment:
    name: str
    config: ExperimentConfig
    allocator: Allocator
    arms: dict[str, CompiledVersion]

    def snapshot(self) -> dict[str, Any]:
        shares = self.allocator.shares()
        return {
            "name": self.name, "prompt": self.config.prompt, "unit": self.config.unit,
            "allocation": self.config.allocation, "metric": self.config.metric,
            "arms": [{"arm": arm, "version": v.config.version, "model": v.config.model,
                      "share": round(shares.get(arm, 0.0), 4)} for arm, v in self.arms.items()],
        }  # fmt: skip


def build_experiments(registry: PromptRegistry, policy: Policy,
                      reuse: Mapping[str, Experiment]) -> dict[str, Experiment]:  # fmt: skip
    """The policy's experiments; an unchanged one keeps its allocator (thompson's shares)."""
    out = {}
    for name, config in policy.experiments.items():
        arms = {arm: arm_version(registry, config.prompt, arm) for arm in config.arms}
        kept = reuse.get(name)
        allocator = (
            kept.allocator if kept is not None and kept.config == config
            else build_allocator(config, policy.feedback.metrics[config.metric])
        )  # fmt: skip
        out[name] = Experiment(name, config, allocator,
                               {a: v for a, v in arms.items() if v is not None})  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class Choice:
    version: CompiledVersion
    experiment: str | None = None
    arm: str | None = None


def resolve(registry: PromptRegistry, experiments: Mapping[str, Experiment],
            ctx: RequestContext, call: ParsedRequest,
            headers: Mapping[str, str]) -> None:  # fmt: skip
    """Rewrite `call` (model, messages, parameters) from the prompt it names."""
    if call.operation != "chat":
        raise InvalidRequest("Prompts are chat templates: use /v1/chat/completions.",
                             param="model")  # fmt: skip
    name, _, ref = call.model.removeprefix(PROMPT_PREFIX).partition("@")
    prompt = registry.prompts.get(name)
    if prompt is None:
        raise NotFound(f"The prompt `{name}` does not exist.", param="model",
                       code="prompt_not_found")  # fmt: skip
    choice = choose(registry, experiments, prompt, ref, call.body, headers)
    rendered = choice.version.render(variables(call.body, headers))
    call.body = build_body(choice.version, prompt, call.body, rendered)
    call.model = choice.version.config.model
    ctx.prompt_name, ctx.prompt_version = name, str(choice.version.config.version)
    ctx.experiment, ctx.arm = choice.experiment, choice.arm
    ctx.request_body = call.body
    ctx.params = {k: call.body[k] for k in SPAN_PARAMS if call.body.get(k) is not None}
    metadata = call.body.get("metadata")
    ctx.tags = orjson.dumps(metadata).decode() if metadata else None


def choose(registry: PromptRegistry, experiments: Mapping[str, Experiment], prompt: PromptFile,
           ref: str, body: dict[str, Any], headers: Mapping[str, str]) -> Choice:  # fmt: skip
    """`@3`, `@latest`, `@experiment`, a label (a version or an experiment); no ref:
    the `production` label if the prompt has one, else the latest version."""
    name = prompt.name
    if not ref:
        ref = "production" if "production" in prompt.labels else "latest"
    if ref == "latest":
        return Choice(registry.compiled[(name, prompt.latest.version)])
    if ref.isdigit():
        found = registry.version(name, int(ref))
        if found is None:
            raise NotFound(f"Prompt `{name}` has no version {ref}.", param="model",
                           code="prompt_version_not_found")  # fmt: skip
        return Choice(found)
    if ref == "experiment":
        running = [e for e in experiments.values() if e.config.prompt == name]
        if len(running) != 1:
            raise (NotFound if not running else InvalidRequest)(
                f"Prompt `{name}` has {len(running) or 'no'} experiments: name one with a label.",
                param="model", code="experiment_not_found" if not running else None,
            )  # fmt: skip
        return assign(running[0], body, headers)
    target = prompt.labels.get(ref)
    if target is None:
        raise NotFound(f"Prompt `{name}` has no label `{ref}` (labels: "
                       f"{', '.join(prompt.labels) or 'none'}).", param="model",
                       code="prompt_version_not_found")  # fmt: skip
    if isinstance(target, str):
        return assign(experiments[target], body, headers)
    return Choice(registry.compiled[(name, target)])


def assign(experiment: Experiment, body: dict[str, Any], headers: Mapping[str, str]) -> Choice:
    unit = unit_of(experiment.config.unit, body, headers)
    arm = pick_arm(experiment.allocator.shares(), unit_point(experiment.name, unit))
    return Choice(experiment.arms[arm], experiment.name, arm)


def unit_of(unit: str, body: dict[str, Any], headers: Mapping[str, str]) -> str | None:
    """`user`: the request's `user`, else its session; `session`: metadata.session_id,
    else the x-gateway-session header; None (or `request`): assigned at random."""
    if unit == "request":
        return None
    user = body.get("user") if unit == "user" else None
    if isinstance(user, str) and user:
        return user
    metadata = body.get("metadata")
    session = metadata.get("session_id") if isinstance(metadata, dict) else None
    return session if isinstance(session, str) and session else headers.get(SESSION_HEADER)


def variables(body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """`metadata.prompt_variables` (an object, or an object as a JSON string), with the
    `x-gateway-prompt-variables` header's (a JSON object) over them."""
    found: dict[str, Any] = {}
    metadata = body.get("metadata")
    given = metadata.get("prompt_variables") if isinstance(metadata, dict) else None
    if given is not None:
        found.update(json_object(given, "metadata.prompt_variables"))
    header = headers.get(VARIABLES_HEADER)
    if header is not None:
        found.update(json_object(header, VARIABLES_HEADER))
    return found


def json_object(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidRequest(f"'{where}' is not valid JSON.", param=where,
                                 code="invalid_prompt_variables") from None  # fmt: skip
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{where}' must be a JSON object of variables.", param=where,
                             code="invalid_prompt_variables")  # fmt: skip
    return value


def build_body(version: CompiledVersion, prompt: PromptFile, request: dict[str, Any],
               rendered: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The version's model and parameters; the request's own parameters only where the
    version sets none or lets them override it; the rendered messages, then the
    request's own (a conversation continuing from the prompt)."""
    config = version.config
    overridable = config.overridable if config.overridable is not None else prompt.overridable
    body: dict[str, Any] = {"model": config.model,
                            "messages": rendered + list(request.get("messages") or [])}  # fmt: skip
    body.update(config.params)
    for key, value in request.items():
        if key in ("model", "messages") or (key in config.params and key not in overridable):
            continue
        if key == "metadata":
            value = {k: v for k, v in value.items() if k != "prompt_variables"}
            if not value:
                continue
        body[key] = value
    return body
