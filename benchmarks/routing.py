"""What routing costs and how fast it reacts, in one run:

1. CPU per request of selection and bookkeeping (pick, health updates, the retry budget,
   the attempt record), in process, per strategy (target <= 10 us);
2. requests/s at 20 concurrent through one gateway: a model with three healthy targets
   against a model with one, same mock, five alternating rounds, medians (target >= 0.95x);
3. how long the `latency` strategy takes to move traffic off a target that slowed down
   (5 ms -> 25 ms): requests and seconds until under 10% of a 20-request window go there.

    python -m benchmarks.routing [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import httpx
import orjson

from benchmarks.mock_upstream import Behavior, MockUpstream, free_port
from benchmarks.proxy_overhead import answers, process
from benchmarks.suite import write_figures


def selection_cost(strategy: str, sticky: bool, n: int) -> float:
    """Microseconds a request: what the loop does around one successful attempt."""
    from gateway.context import Attempt
    from gateway.policy.models import ModelConfig
    from gateway.routing import Target, build_route, new_health

    class Provider:
        def __init__(self, name: str) -> None:
            self.name = name

        def supports(self, operation: str) -> bool:
            return True

    config = ModelConfig.model_validate({
        "strategy": strategy, "sticky": "user" if sticky else None,
        "targets": [{"provider": p, "upstream_model": "m"} for p in "abc"]})  # fmt: skip
    targets = [Target("m", Provider(p), "m", new_health(p, "m", config)) for p in "abc"]  # type: ignore[arg-type]
    route = build_route("m", config, targets)
    body = {"user": "user-42", "messages": []}
    loop_time = time.monotonic

    def one() -> None:
        now = loop_time()
        route.budget.request(now)
        key = route.affinity_key(body, None)
        target = route.pick("chat", set(), now, key)
        health = target.health
        health.started()
        health.latency(0.004, now)
        health.succeeded(now, {})
        health.finished()
        Attempt(target.provider.name, target.upstream_model, 200, 0.004, None, "s", 0.0,
                "h", 1, "openai", "ok", 0.0, health.breaker.state)  # fmt: skip

    for _ in range(1000):
        one()
    return min(timeit.repeat(one, number=n, repeat=5)) / n * 1e6


POLICY = """\
version: 1
providers:
{providers}
models:
  single:
    provider: p0
    upstream_model: mock-fast
  three:
    targets:
      - {{provider: p0, upstream_model: mock-fast}}
      - {{provider: p1, upstream_model: mock-fast}}
      - {{provider: p2, upstream_model: mock-fast}}
telemetry:
  otel: true
"""


def throughput(seconds: float, rounds: int) -> dict[str, list[float]]:
    mock_port, gw_port = free_port(), free_port()
    providers = "\n".join(f"  p{i}: {{type: openai, base_url: 'http://127.0.0.1:{mock_port}/v1'}}"
                          for i in range(3))  # fmt: skip
    out: dict[str, list[float]] = {"single": [], "three": []}
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "p.yaml"
        policy.write_text(POLICY.format(providers=providers))
        mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
        gateway = [sys.executable, "-m", "gateway", "serve", "--policy", str(policy), "--port",
                   str(gw_port), "--no-access-log"]  # fmt: skip
        with process(mock, lambda: answers(mock_port)), \
                process(gateway, lambda: answers_model(gw_port)):  # fmt: skip
            for _ in range(rounds):
                for model in ("single", "three"):
                    out[model].append(load(gw_port, model, seconds)["rps"])
    return out


def answers_model(port: int) -> bool:
    try:
        return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=2, json={
            "model": "single", "messages": [{"role": "user", "content": "Hi"}]}).status_code == 200  # fmt: skip
    except httpx.HTTPError:
        return False


def load(port: int, model: str, seconds: float,
         request: dict[str, object] | None = None) -> dict[str, float]:  # fmt: skip
    import subprocess

    body = orjson.dumps(
        request or {"model": model, "messages": [{"role": "user", "content": "Hello"}]}
    )
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", f"http://127.0.0.1:{port}/v1/chat/completions",
         body.decode(), "--concurrency", "20", "--duration", str(seconds)],
        capture_output=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    result: dict[str, float] = orjson.loads(out.stdout)
    return result


def reaction(max_requests: int) -> dict[str, float]:
    """Sequential requests through an in-process gateway over two mocks; one slows."""
    from gateway.app import Settings
    from tests.conftest import GatewayServer

    a, b = MockUpstream().start(), MockUpstream().start()
    for mock in (a, b):
        mock.behave("x", Behavior(delay_s=0.005))
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "p.yaml"
        policy.write_text(f"""\
version: 1
providers:
  a: {{type: openai, base_url: '{a.base_url}/v1'}}
  b: {{type: openai, base_url: '{b.base_url}/v1'}}
models:
  m:
    strategy: latency
    targets: [{{provider: a, upstream_model: x}}, {{provider: b, upstream_model: x}}]
""")
        body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
        with GatewayServer(Settings(policy_path=str(policy), watch_policy=False,
                                    access_log=False)) as gw, httpx.Client() as client:  # fmt: skip
            url = gw.v1 + "/chat/completions"
            for _ in range(100):
                client.post(url, json=body)
            a.behave("x", Behavior(delay_s=0.025))  # a slows down 5x
            started, n = time.monotonic(), 0
            window: list[bool] = []
            while n < max_requests:
                before = len(a.requests)
                client.post(url, json=body)
                n += 1
                window = [*window[-19:], len(a.requests) > before]
                if len(window) == 20 and sum(window) < 2:
                    break
            elapsed = time.monotonic() - started
    a.stop()
    b.stop()
    return {"requests": n, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="a few seconds: the script works")
    args = parser.parse_args()
    n, seconds, rounds = (2000, 1.0, 1) if args.smoke else (20000, 5.0, 5)
    costs = {f"{s}{' + sticky' if sticky else ''}": selection_cost(s, sticky, n)
             for s in ("weighted", "latency", "least_busy", "ordered")
             for sticky in (False, True) if not sticky or s == "weighted"}  # fmt: skip
    tput = throughput(seconds, rounds)
    moved = reaction(400 if args.smoke else 2000)
    lines = [f"selection + bookkeeping, {name}: {us:.2f} us a request (target <= 10 us)"
             for name, us in costs.items()]  # fmt: skip
    single, three = statistics.median(tput["single"]), statistics.median(tput["three"])
    lines += [
        f"rps at 20 concurrent, one target: {single:.0f} (rounds {[round(x) for x in tput['single']]})",
        f"rps at 20 concurrent, three targets: {three:.0f} (rounds {[round(x) for x in tput['three']]})",
        f"three targets / one: {three / single:.2f}x (target >= 0.95x)",
        f"latency strategy off a target slowed 5 ms -> 25 ms: {moved['requests']:.0f} requests, "
        f"{moved['seconds']:.2f} s (to under 10% of a 20-request window)",
    ]  # fmt: skip
    print("\n".join(lines))
    if not args.smoke:
        write_figures(Path(__file__).with_name("routing.txt"), "python -m benchmarks.routing",
                      lines)  # fmt: skip


if __name__ == "__main__":
    main()
