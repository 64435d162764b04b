"""A policy directory with a `prompts/` folder: the support-reply prompt of the issue,
two models on the mock upstream, feedback metrics and an experiment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.mock_upstream import MockUpstream

POLICY = """\
version: 1
telemetry:
  duckdb: {db}
  flush_interval_s: 0.1
providers:
  mock:
    type: openai
    base_url: {mock}/v1
    api_key: ${{TEST_UPSTREAM_KEY:-sk-upstream-secret}}
    timeout_s: 2
models:
  chat:
    provider: mock
    upstream_model: up-chat
  small:
    provider: mock
    upstream_model: up-small
feedback:
  metrics:
    resolved: {{type: boolean, direction: max}}
    rating: {{type: float, min: 1, max: 5, direction: max}}
    tone: {{type: category, categories: [formal, friendly, rude]}}
"""

EXPERIMENT = """\
experiments:
  reply-tone:
    prompt: support-reply
    arms: {{"3": 0.5, "4": 0.5}}
    unit: user
    metric: resolved
    min_samples: {min_samples}
    allocation: {allocation}
"""

PROMPT = """\
name: support-reply
versions:
  - version: 3
    messages:
      - {role: system, content: "You are a support agent for {{ product }}. Answer in {{ language | default('English') }}."}
      - {role: user, content: "{{ question }}"}
    variables:
      product: {type: string}
      question: {type: string, maxLength: 4000}
      language: {type: string, enum: [English, French, German]}
    model: chat
    params: {temperature: 0.2, max_tokens: 400}
  - version: 4
    messages:
      - {role: system, content: "You are a friendly support agent for {{ product }}."}
      - {role: user, content: "{{ question }}"}
    variables:
      product: {type: string}
      question: {type: string, maxLength: 4000}
    model: small
    params: {temperature: 0.5, max_tokens: 300}
overridable: [temperature]
labels: {production: 3, staging: 4}
"""

PolicyDir = Callable[..., Path]


@pytest.fixture
def policy_dir(tmp_path: Path, mock: MockUpstream) -> PolicyDir:
    """Write `policies/` (policy.yaml + prompts/support-reply.yaml) and return it."""

    def write(experiment: bool = True, allocation: str = "fixed", min_samples: int = 200,
              prompt: str = PROMPT, extra: str = "") -> Path:  # fmt: skip
        root = tmp_path / "policies"
        (root / "prompts").mkdir(parents=True, exist_ok=True)
        text = POLICY.format(db=tmp_path / "requests.duckdb", mock=mock.base_url)
        if experiment:
            text += EXPERIMENT.format(allocation=allocation, min_samples=min_samples)
        (root / "policy.yaml").write_text(text + extra)
        (root / "prompts" / "support-reply.yaml").write_text(prompt)
        return root

    return write
