"""What prompt resolution costs on the request path, in one run:

1. CPU per request of the resolve_prompt stage, in process: a label (`@production`) and an
   experiment arm (`@experiment`, hashing the user), variables validated and rendered,
   against the one check a plain request pays;
2. requests/s at 20 concurrent through one gateway: `model: chat` against
   `model: prompt:support-reply@experiment` (same upstream model, same mock), alternating
   rounds, medians.

    python -m benchmarks.prompts [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.mock_upstream import free_port
from benchmarks.proxy_overhead import answers, process
from benchmarks.routing import load
from benchmarks.suite import write_figures

POLICY = """\
version: 1
providers:
  mock: {{type: openai, base_url: 'http://127.0.0.1:{port}/v1'}}
models:
  chat: {{provider: mock, upstream_model: mock-fast}}
telemetry:
  duckdb: {db}
feedback:
  metrics:
    resolved: {{type: boolean}}
experiments:
  tone:
    prompt: support-reply
    arms: {{"3": 0.5, "4": 0.5}}
    metric: resolved
"""
PROMPT = (Path(__file__).parents[1] / "examples/support/prompts/support-reply.yaml").read_text()
VARIABLES = orjson.dumps({"product": "Acme", "question": "Where is my order? " * 10}).decode()


def write_policy(root: Path, port: int) -> Path:
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "policy.yaml").write_text(POLICY.format(port=port, db=root / "r.duckdb"))
    (root / "prompts" / "p.yaml").write_text(PROMPT)
    return root


def body(model: str, user: str = "user-42") -> dict[str, Any]:
    """A prompt request, or for `chat` the request it becomes (what a client without
    the registry would send itself)."""
    if model.startswith("prompt:"):
        return {"model": model, "messages": [], "user": user,
                "metadata": {"prompt_variables": VARIABLES}}  # fmt: skip
    question = orjson.loads(VARIABLES)["question"]
    return {"model": model, "user": user, "temperature": 0.2, "max_tokens": 40, "messages": [
        {"role": "system", "content": "You are a support agent for Acme. Answer in English."},
        {"role": "user", "content": question},
    ]}  # fmt: skip


def stage_cost(n: int) -> dict[str, float]:
    """Microseconds a request for each kind of reference, in process."""
    from gateway.context import RequestContext
    from gateway.policy.loader import load_policy
    from gateway.prompts import is_prompt_ref
    from gateway.prompts.stage import build_experiments, resolve
    from gateway.requests import ParsedRequest

    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_policy(write_policy(Path(tmp), 9))
    registry = loaded.prompts
    experiments = build_experiments(registry, loaded.policy, {})
    out = {}
    for ref in ("prompt:support-reply@production", "prompt:support-reply@experiment"):
        template = body(ref)

        def one(template: dict[str, Any] = template) -> None:
            call = ParsedRequest("chat", dict(template), template["model"], False)
            resolve(registry, experiments, RequestContext("r", "POST", "/"), call, {})

        one()
        out[ref.rsplit("@", 1)[1]] = min(timeit.repeat(one, number=n, repeat=5)) / n * 1e6
    plain = body("chat")
    out["plain (the check)"] = min(timeit.repeat(lambda: is_prompt_ref(plain["model"]),
                                                 number=n * 10, repeat=5)) / (n * 10) * 1e6  # fmt: skip
    return out


def throughput(seconds: float, rounds: int) -> dict[str, list[float]]:
    mock_port, gw_port = free_port(), free_port()
    out: dict[str, list[float]] = {"chat": [], "prompt:support-reply@experiment": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = write_policy(Path(tmp), mock_port)
        mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
        gateway = [sys.executable, "-m", "gateway", "serve", "--policy", str(root), "--port",
                   str(gw_port), "--no-access-log"]  # fmt: skip
        with process(mock, lambda: answers(mock_port)), \
                process(gateway, lambda: ready(gw_port)):  # fmt: skip
            for _ in range(rounds):
                for model in out:
                    out[model].append(load(gw_port, model, seconds, body(model))["rps"])
    return out


def ready(port: int) -> bool:
    try:
        return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=2,
                          json=body("prompt:support-reply@3")).status_code == 200  # fmt: skip
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="a few seconds: the script works")
    args = parser.parse_args()
    n, seconds, rounds = (500, 1.0, 1) if args.smoke else (5000, 5.0, 5)
    costs = stage_cost(n)
    tput = throughput(seconds, rounds)
    lines = [f"resolve_prompt, {name}: {us:.2f} us a request" for name, us in costs.items()]
    plain, prompt = (statistics.median(v) for v in tput.values())
    lines += [f"rps at 20 concurrent, {model}: {statistics.median(v):.0f} (rounds "
              f"{[round(x) for x in v]})" for model, v in tput.items()]  # fmt: skip
    lines.append(f"prompt / plain: {prompt / plain:.2f}x")
    print("\n".join(lines))
    if not args.smoke:
        write_figures(Path(__file__).with_name("prompts.txt"), "python -m benchmarks.prompts",
                      lines)  # fmt: skip


if __name__ == "__main__":
    main()
