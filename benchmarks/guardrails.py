"""Guardrail cost: each scanner's latency on the labelled data, and the whole input +
output chain per request through a gateway (guarded model vs the same model unguarded,
requests interleaved, same mock, same run).

    python -m benchmarks.guardrails [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks import peers
from benchmarks.mock_upstream import free_port
from benchmarks.suite import sequential, streaming
from gateway.guardrails import build_guardrail
from gateway.guardrails.evaluate import HEADER, evaluate, load
from gateway.guardrails.pii import PiiScanner
from gateway.policy.models import (
    GuardrailConfig,
    PiiGuardrail,
    PromptInjectionGuardrail,
    SecretsGuardrail,
)
from gateway.stats import table

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures"
CHAIN = """
guardrails:
  secrets: {type: secrets, action: block}
  pii: {type: pii, action: redact}
  injection: {type: prompt_injection, action: block}
"""
GUARDED = "    guardrails: {input: [secrets, injection, pii], output: [secrets, pii]}\n"


def scanners(smoke: bool) -> None:
    configs: dict[str, GuardrailConfig] = {"pii": PiiGuardrail(type="pii"), "secrets": SecretsGuardrail(type="secrets"),
               "injection": PromptInjectionGuardrail(type="prompt_injection")}  # fmt: skip
    rows = []
    for dataset, names in (("pii_generated.jsonl", ["pii", "secrets"]),
                           ("injection.jsonl", ["injection", "secrets", "pii"])):  # fmt: skip
        data = load(FIXTURES / dataset)[: 60 if smoke else None]
        for name in names:
            score = asyncio.run(evaluate(build_guardrail(name, configs[name]), data))
            rows.append([f"{name} on {dataset}", *score.row(name)[1:]])
    print(table(["scanner on data", *HEADER[1:]], rows))


def paragraph(k: int) -> str:
    """Business prose whose numbers differ from paragraph to paragraph (versions, dates,
    percentages, prices, order ids, ports): no scanner cache sees the same one twice."""
    return (
        f"Our review {k} covers the migration to version 2.{k % 17}.{k % 7} of the billing "
        f"service, live on 2024-{1 + k % 12:02d}-{1 + k % 28:02d} after a {2 + k % 5}-week "
        f"freeze. Latency dropped by {10 + k % 80}% and order #{48213 + 7919 * k} shipped "
        f"at ${k % 900 + 100}.{k % 100:02d}; the API listens on port {8000 + k % 999}. "
    )


def pii_2kb(smoke: bool) -> None:
    """PII scan time for 2 KB prompts: prose with an email, a phone number and numbers that
    are not PII; and 2 KB of the labelled corpus back to back (dense with numbers):
    presidio's eight phone regions vs one. No two texts hold the same numbers."""
    n = 5 if smoke else 40
    rows = [r["text"] for r in load(FIXTURES / "pii_generated.jsonl")]
    dense: list[str] = []
    i = 0
    while len(dense) < n:
        text = ""
        while len(text) < 2048:
            text, i = text + rows[i % len(rows)] + " ", i + 1
        dense.append(text[:2048])
    prose = []
    for k in range(n):
        text = "".join(paragraph(8 * k + j) for j in range(4))
        text += f"Reach jane{k}@example.com or (415) 555-{1000 + k:04d}. "
        prose.append((text + "".join(paragraph(8 * k + j) for j in range(4, 8)))[:2048])
    default = PiiGuardrail(type="pii")
    for config in (default, PiiGuardrail(type="pii", phone_regions=("US",))):
        scanner = PiiScanner("pii", config)
        label = "default regions" if config == default else "phone_regions: [US]"
        for name, texts in (
            ("prose + email, phone, other numbers", prose),
            ("labelled corpus", dense),
        ):
            times = []
            for text in texts:
                started = time.perf_counter()
                scanner.analyze(text)
                times.append(time.perf_counter() - started)
            print(f"pii on 2 KB of {name}, {label}: p50 {statistics.median(times) * 1000:.2f} ms")


def prompt(i: int) -> str:
    """A different prompt each request: the scanners cache their verdict per text."""
    return (f"The customer says the order from last week has not arrived and asks whether "
            f"we can call back tomorrow morning. Summarise it for the team. (case {i})")  # fmt: skip


def chain(smoke: bool) -> None:
    n = 40 if smoke else 1000
    mock_port = free_port()
    with ExitStack() as stack:
        stack.enter_context(peers.started("mock", peers.mock(mock_port, 20, 10.0), mock_port, {}))
        plain = stack.enter_context(peers.ours("unguarded", peers.our_policy(mock_port)))
        policy = peers.our_policy(mock_port, GUARDED) + CHAIN
        guarded = stack.enter_context(peers.ours("guarded", policy))
        seq = sequential([plain, guarded], n, prompt)
        streams = streaming([plain, guarded], max(n // 10, 5), prompt)
    added = (statistics.median(seq["guarded"]) - statistics.median(seq["unguarded"])) * 1000
    ttfc = {k: statistics.median(v["ttfc"]) * 1000 for k, v in streams.items()}
    print(f"whole chain per request (input: secrets, injection, pii; output: secrets, pii):\n"
          f"  median unguarded {statistics.median(seq['unguarded']) * 1000:.3f} ms, guarded "
          f"{statistics.median(seq['guarded']) * 1000:.3f} ms, added {added:.3f} ms\n"
          f"  stream time to first chunk: unguarded {ttfc['unguarded']:.3f} ms, guarded "
          f"{ttfc['guarded']:.3f} ms, added {ttfc['guarded'] - ttfc['unguarded']:.3f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    scanners(args.smoke)
    pii_2kb(args.smoke)
    chain(args.smoke)


if __name__ == "__main__":
    main()
