"""`gateway check`: validate a policy, and what a policy needs installed."""

from __future__ import annotations

import sys
from typing import Any

from gateway.policy.loader import LoadedPolicy, PolicyError, load_policy
from gateway.policy.models import LocalProviderConfig, PiiGuardrail, Policy


def add_commands(commands: Any) -> None:
    check = commands.add_parser("check", help="validate a policy file or directory")
    check.add_argument("path")


def missing_ner_models(policy: Policy) -> list[str]:
    """spaCy pipelines the PII guardrails name that are not installed."""
    wanted = [(name, g.ner_model) for name, g in policy.guardrails.items()
              if isinstance(g, PiiGuardrail) and g.ner_model]  # fmt: skip
    if not wanted:
        return []
    from gateway.guardrails.pii import ner_model_error

    return [p for name, model in wanted if (p := ner_model_error(name, model)) is not None]


def local_models(policy: Policy) -> list[str]:
    """Built-in models a policy needs: its local providers', and the encoder under the
    prompt-injection guardrail and semantic caches."""
    models = [p.model for p in policy.providers.values() if isinstance(p, LocalProviderConfig)]
    if any(g.type == "prompt_injection" for g in policy.guardrails.values()) or any(
        c.type == "semantic" for c in policy.caches.values()
    ):
        models.append("all-minilm-l6-v2")
    return models


def load_or_report(path: str | None) -> LoadedPolicy | None:
    """The policy, or None with every problem printed (for the commands that read it)."""
    try:
        return load_policy(path)
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def run(path: str) -> int:
    loaded = load_or_report(path)
    if loaded is None:
        return 1
    policy = loaded.policy
    problems = missing_ner_models(policy)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    prompts = loaded.prompts
    for name, versions in sorted(prompts.unlocked.items()):
        print(f"{name}: version(s) {', '.join(map(str, sorted(versions)))} not in prompts.lock "
              "yet (`gateway prompts lock` or the first `gateway serve` adds them)")  # fmt: skip
    print(f"{path}: ok ({len(policy.providers)} providers, {len(policy.models)} models, "
          f"{len(prompts.prompts)} prompts, {len(policy.experiments)} experiments)")  # fmt: skip
    return 0
