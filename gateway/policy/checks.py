"""Checks pydantic cannot express field by field: names in one part of a policy that must
refer to another (models to providers, caches, guardrails, fallbacks without cycles, keys
to teams, experiments to feedback metrics)."""

from __future__ import annotations

from gateway.policy.models import INPUT_ONLY, ModelGuardrails, Policy


def fallback_cycles(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """A model that falls back, through its fallbacks' fallbacks, to itself."""
    graph = {name: [r.model for r in m.fallback_rules if r.model in policy.models]
             for name, m in policy.models.items()}  # fmt: skip
    errors: list[tuple[tuple[str | int, ...], str]] = []
    for start in graph:
        for i, first in enumerate(graph[start]):
            cycle = path_back(graph, start, [start, first])
            if cycle is not None and first != start:
                errors.append((("models", start, "fallbacks", i),
                               "fallback cycle: " + " -> ".join(cycle)))  # fmt: skip
    return errors


def path_back(graph: dict[str, list[str]], start: str, path: list[str]) -> list[str] | None:
    """A path from `path`'s end back to `start` (depth first), or None."""
    if path[-1] == start and len(path) > 1:
        return path
    for nxt in graph.get(path[-1], []):
        if nxt == start or nxt not in path:
            found = path_back(graph, start, [*path, nxt])
            if found is not None:
                return found
    return None


def cross_reference_errors(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """Checks pydantic cannot express per field: names that must refer to each other."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    for name, model in policy.models.items():
        if model.provider is not None and model.provider not in policy.providers:
            errors.append((("models", name, "provider"), f"unknown provider {model.provider!r}"))
        for i, target in enumerate(model.targets):
            if target.provider not in policy.providers:
                errors.append((("models", name, "targets", i, "provider"),
                               f"unknown provider {target.provider!r}"))  # fmt: skip
        for i, rule in enumerate(model.fallback_rules):
            if rule.model not in policy.models or rule.model == name:
                errors.append((("models", name, "fallbacks", i), f"unknown model {rule.model!r}"))
        if model.cache is not None and model.cache not in policy.caches:
            errors.append((("models", name, "cache"), f"unknown cache {model.cache!r}"))
    errors += fallback_cycles(policy)
    for name, cache in policy.caches.items():
        if cache.backend == "redis" and not cache.redis_url:
            errors.append((("caches", name, "redis_url"), "backend redis needs a redis_url"))
    for name, provider in policy.providers.items():
        if provider.type == "azure" and provider.api_key is None:
            errors.append((("providers", name, "api_key"), "azure needs an api_key"))
    owners: list[tuple[tuple[str | int, ...], ModelGuardrails]] = [
        (("models", name), model.guardrails) for name, model in policy.models.items()
    ]
    owners += [(("auth", "keys", i), key.guardrails) for i, key in enumerate(policy.auth.keys)]
    for owner, chains in owners:
        for stage in ("input", "output"):
            for i, guardrail in enumerate(getattr(chains, stage)):
                path = (*owner, "guardrails", stage, i)
                if guardrail not in policy.guardrails:
                    errors.append((path, f"unknown guardrail {guardrail!r}"))
                elif stage == "output" and policy.guardrails[guardrail].type in INPUT_ONLY:
                    errors.append((path, f"{guardrail!r} judges prompts: input only"))
    errors += experiment_errors(policy)
    for i, key in enumerate(policy.auth.keys):
        if key.team is not None and key.team not in policy.teams:
            errors.append((("auth", "keys", i, "team"), f"unknown team {key.team!r}"))
    if policy.store.type == "redis" and not policy.store.url:
        errors.append((("store", "url"), "a redis store needs a url"))
    seen: set[str] = set()
    for i, key in enumerate(policy.auth.keys):
        if key.id in seen:
            errors.append((("auth", "keys", i, "id"), f"duplicate key id {key.id!r}"))
        seen.add(key.id)
    return errors


def experiment_errors(policy: Policy) -> list[tuple[tuple[str | int, ...], str]]:
    """Experiments decide on a declared feedback metric; feedback lives in the request log."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    metrics = policy.feedback.metrics
    if metrics and not policy.telemetry.duckdb:
        errors.append((("feedback",), "feedback is stored in the request log: set "
                                      "telemetry.duckdb"))  # fmt: skip
    for name, experiment in policy.experiments.items():
        metric = metrics.get(experiment.metric)
        if metric is None:
            errors.append((("experiments", name, "metric"),
                           f"unknown feedback metric {experiment.metric!r}"))  # fmt: skip
        elif experiment.allocation == "thompson" and metric.type == "category":
            errors.append((("experiments", name, "allocation"),
                           "thompson needs a boolean or float metric"))  # fmt: skip
    return errors
