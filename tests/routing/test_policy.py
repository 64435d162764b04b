"""Routing keys are validated with file:line: key.path errors; old policies load as before."""

from __future__ import annotations

from gateway.policy.loader import PolicyError, parse_texts

HEAD = """\
version: 1
providers:
  a: {type: openai, base_url: http://127.0.0.1:9/v1}
models:
"""


def issues(models: str) -> list[str]:
    try:
        parse_texts([("p.yaml", HEAD + models)])
    except PolicyError as exc:
        return [str(i) for i in exc.issues]
    return []


def test_the_issue_s_example_loads() -> None:
    assert (
        issues("""\
  chat:
    targets:
      - {provider: a, upstream_model: gpt-4o-mini, weight: 3}
      - {provider: a, upstream_model: gpt-4o-mini-2, weight: 1}
    strategy: latency
    sticky: user
    retry: {attempts: 2, backoff_s: 0.25, max_backoff_s: 8, honor_retry_after: true, max_wait_s: 10}
    timeouts: {connect_s: 5, first_chunk_s: 15, between_chunks_s: 30, total_s: 300}
    fallbacks:
      - {model: haiku, on: [rate_limit, server_error, timeout, unreachable]}
      - {model: big, on: [context_window]}
      - {model: local, on: [content_policy]}
    circuit_breaker: {failure_ratio: 0.5, min_requests: 5, window_s: 30, cooldown_s: 15}
  haiku: {provider: a, upstream_model: h}
  big: {provider: a, upstream_model: b, fallbacks: [local]}
  local: {provider: a, upstream_model: l}
""")
        == []
    )


def test_each_mistake_with_its_path() -> None:
    found = issues("""\
  chat:
    targets:
      - {provider: a, upstream_model: x, weight: 0}
      - {provider: nope, upstream_model: x}
    strategy: fastest
    fallbacks:
      - {model: other, on: [rate_limit, meteor_strike]}
  other: {provider: a, upstream_model: y}
""")
    assert "p.yaml:7: models.chat.targets[0].weight: Input should be greater than 0" in found
    assert any(i.startswith("p.yaml:9: models.chat.strategy: Input should be") for i in found)
    assert any(i.startswith("p.yaml:11: models.chat.fallbacks[0].on[1]: Input should be")
               for i in found), found  # fmt: skip


def test_cycles_and_unknown_names() -> None:
    found = issues("""\
  a1: {provider: a, upstream_model: x, fallbacks: [a2]}
  a2:
    targets: [{provider: zz, upstream_model: y}]
    fallbacks: [{model: a3, on: [timeout]}]
  a3: {provider: a, upstream_model: z, fallbacks: [a1, ghost]}
""")
    assert "p.yaml:5: models.a1.fallbacks[0]: fallback cycle: a1 -> a2 -> a3 -> a1" in found
    assert "p.yaml:7: models.a2.targets[0].provider: unknown provider 'zz'" in found
    assert "p.yaml:9: models.a3.fallbacks[1]: unknown model 'ghost'" in found


def test_targets_or_provider_not_both() -> None:
    found = issues("""\
  chat:
    provider: a
    upstream_model: x
    targets: [{provider: a, upstream_model: y}]
""")
    assert found and "either provider/upstream_model or targets" in found[0]
