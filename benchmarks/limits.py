"""What limits cost on the request path, in one run:

1. the limit step a request pays, in process: plan + reserve before the call and settle
   after it, for a key with rpm, tpm and concurrency limits in a team with a monthly
   budget (5 counters), against Redis on loopback (target p50 <= 0.3 ms: one round trip
   before the call, one after) and the embedded LMDB store (target <= 30 us);
2. requests/s at 20 concurrent through a gateway with those limits (Redis, then
   embedded) against one without, same mock, alternating rounds, medians.

    python -m benchmarks.limits [--smoke]

Redis: Debian's redis-server, started here on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from benchmarks.mock_upstream import free_port
from benchmarks.proxy_overhead import answers, process
from benchmarks.suite import write_figures

KEY = "sk-gw-bench"
LIMITS = """\
auth:
  keys: [{{id: app, team: search, sha256: {sha}}}]
teams:
  search: {{budgets: [{{usd: 1000000, period: month}}]}}
keys_defaults: {{limits: {{rpm: 10000000, tpm: 1000000000, concurrent: 10000}}}}
store: {store}
"""


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    time.sleep(0.3)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def step_cost(url: str, n: int, tmp: Path) -> dict[str, list[float]]:
    """Microseconds of plan + reserve + settle, per store (sequential requests)."""
    import redis.asyncio as aioredis

    from gateway.limits.lmdb_limits import LmdbLimits
    from gateway.limits.plan import KeyLimits, checks, scopes
    from gateway.limits.redis_limits import RedisLimits
    from gateway.policy.models import Policy

    policy = Policy.model_validate({"version": 1, **_limits_doc()})
    key = policy.auth.keys[0]
    identity = KeyLimits(key.id, key.team, key.limits, key.budgets)
    zone = ZoneInfo("UTC")

    async def run(store: object, name: str, out: dict[str, list[float]]) -> None:
        """Before the call: plan + reserve, one request at a time (latency). After the
        response: settlements as they come under load, 50 at once (CPU a request)."""
        reserve, settle = [], []
        for batch in range(n // 50):
            ids = [f"r{batch}-{i}" for i in range(50)]
            for rid in ids:
                started = time.perf_counter()
                planned = checks(scopes(policy, identity, None), "chat", 120,
                                 Decimal("0.0001"), time.time(), zone)  # fmt: skip
                await store.reserve(rid, planned)  # type: ignore[attr-defined]
                reserve.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            await asyncio.gather(*(store.settle(rid, 100, 0.00008) for rid in ids))  # type: ignore[attr-defined]
            settle.append((time.perf_counter() - started) * 1e6 / 50)
        out[f"{name} reserve"], out[f"{name} settle"] = reserve[n // 10 :], settle[1:]

    async def both() -> dict[str, list[float]]:
        client = aioredis.Redis.from_url(url)
        out: dict[str, list[float]] = {}
        await run(RedisLimits(client, 1.0, 600, 900), "redis", out)
        await run(LmdbLimits(tmp / "limits.lmdb", 1.0, 600, 900), "embedded", out)
        await client.aclose()
        return out

    return asyncio.run(both())


def _limits_doc() -> dict[str, object]:
    import yaml

    text = LIMITS.format(sha=hashlib.sha256(KEY.encode()).hexdigest(), store="{type: embedded}")
    doc: dict[str, object] = yaml.safe_load(text)
    return doc


def throughput(url: str, seconds: float, rounds: int) -> dict[str, list[float]]:
    mock_port = free_port()
    ports = {"off": free_port(), "redis": free_port(), "embedded": free_port()}
    out: dict[str, list[float]] = {name: [] for name in ports}
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hello"}]}
    with tempfile.TemporaryDirectory() as tmp:
        sha = hashlib.sha256(KEY.encode()).hexdigest()
        stores = {"redis": f"{{type: redis, url: '{url}'}}",
                  "embedded": f"{{type: embedded, path: '{tmp}/state'}}"}  # fmt: skip
        policies = {}
        for name in ports:
            text = (f"version: 1\nproviders:\n  mock: {{type: openai, base_url: "
                    f"'http://127.0.0.1:{mock_port}/v1'}}\nmodels:\n  chat: {{provider: mock, "
                    f"upstream_model: mock-fast}}\n")  # fmt: skip
            text += LIMITS.format(sha=sha, store=stores[name]) if name in stores else (
                f"auth:\n  keys: [{{id: app, sha256: {sha}}}]\n")  # fmt: skip
            policies[name] = Path(tmp) / f"{name}.yaml"
            policies[name].write_text(text)
        mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
        with process(mock, lambda: answers(mock_port)):
            for name, port in ports.items():
                gateway = [sys.executable, "-m", "gateway", "serve", "--policy",
                           str(policies[name]), "--port", str(port), "--no-access-log"]  # fmt: skip
                with process(gateway, lambda p=port: ready(p)):  # type: ignore[misc]
                    for _ in range(rounds):
                        out[name].append(load_with_key(port, seconds, body))
    return out


def ready(port: int) -> bool:
    import httpx

    try:
        return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=2,
                          headers={"authorization": f"Bearer {KEY}"},
                          json={"model": "chat", "messages": []}).status_code == 400  # fmt: skip
    except httpx.HTTPError:
        return False


def load_with_key(port: int, seconds: float, body: Mapping[str, object]) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", f"http://127.0.0.1:{port}/v1/chat/completions",
         orjson.dumps(body).decode(), "--concurrency", "20", "--duration", str(seconds),
         "--header", f"authorization: Bearer {KEY}"],
        capture_output=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    return float(orjson.loads(out.stdout)["rps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="a few seconds: the script works")
    args = parser.parse_args()
    n, seconds, rounds = (300, 1.0, 1) if args.smoke else (5000, 5.0, 3)
    with redis_server() as url, tempfile.TemporaryDirectory() as tmp:
        costs = step_cost(url, n, Path(tmp))
        tput = throughput(url, seconds, rounds)
    lines = []
    for name, target in (("redis", "p50 <= 300 us"), ("embedded", "<= 30 us")):
        times = sorted(costs[f"{name} reserve"])
        p50, p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
        settle = statistics.median(costs[f"{name} settle"])
        lines.append(f"limits, {name}, 5 counters: plan + reserve before the call p50 {p50:.0f} us, "
                     f"p95 {p95:.0f} us; settle after the response {settle:.0f} us a request; "
                     f"together {p50 + settle:.0f} us (target {target})")  # fmt: skip
    off = statistics.median(tput["off"])
    for name, rps in tput.items():
        ratio = f" ({statistics.median(rps) / off:.2f}x)" if name != "off" else ""
        lines.append(f"rps at 20 concurrent, limits {name}: {statistics.median(rps):.0f}{ratio} "
                     f"(rounds {[round(x) for x in rps]})")  # fmt: skip
    print("\n".join(lines))
    if not args.smoke:
        write_figures(Path(__file__).with_name("limits.txt"), "python -m benchmarks.limits",
                      lines)  # fmt: skip


if __name__ == "__main__":
    main()
