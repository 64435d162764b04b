"""What the response cache costs and saves, in one run against the same mock:

1. an exact hit end to end, against the mock answered directly and the gateway passing
   through to it (sequential, interleaved; medians and p99);
2. the CPU a miss adds (plan and lookup, tap, the write after the response), measured
   in process on the cache stage itself against a model without a cache (the serving
   process's own CPU counters are too coarse here: 10 ms ticks, two cores shared with the
   client and the mock); and the Redis round trip a lookup waits on;
3. the semantic lookup (MiniLM embedding of the last user message + nearest neighbour in
   a partition of 1,000 entries), p50/p95 on this machine, in memory and in Redis; and the
   neighbour search alone by partition size (numpy, brute force);
4. requests/s at 20 concurrent with 90% hits (10% of requests made unique), against the
   gateway with no cache.

    python -m benchmarks.cache [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.mock_upstream import DEFAULT_MODEL, free_port
from benchmarks.proxy_overhead import POLICY, answers, ms, process, sequential
from benchmarks.suite import write_figures

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0}  # fmt: skip
CACHED = "    cache: c\ncaches:\n  c: {{type: exact{backend}}}\n"


def gateway(policy: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "gateway", "serve", "--policy", str(policy), "--port",
            str(port)]  # fmt: skip


def write_policies(tmp: Path, mock_port: int, redis_url: str) -> dict[str, Path]:
    base = POLICY.format(port=mock_port, model=DEFAULT_MODEL) + "telemetry:\n  otel: false\n"
    policies = {"plain": base,
                "memory": base.replace("telemetry:", CACHED.format(backend="") + "telemetry:"),
                "redis": base.replace("telemetry:", CACHED.format(
                    backend=f", backend: redis, redis_url: '{redis_url}'") + "telemetry:")}  # fmt: skip
    paths = {}
    for name, text in policies.items():
        paths[name] = tmp / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


def unique_requests(port: int, n: int, tag: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(n):
        body = {**CHAT, "messages": [{"role": "user", "content": f"Hello {tag} {i}"}]}
        conn.request("POST", "/v1/chat/completions", orjson.dumps(body),
                     {"content-type": "application/json"})  # fmt: skip
        conn.getresponse().read()


STAGE_POLICY = """\
version: 1
providers:
  mock: {{type: openai, base_url: http://127.0.0.1:9/v1}}
models:
  cached: {{provider: mock, upstream_model: m, cache: c}}
  plain: {{provider: mock, upstream_model: m}}
caches:
  c: {{type: exact{backend}}}
"""
ANSWER = orjson.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content":
                                   "Hello! How can I help you today?"}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 9, "completion_tokens": 8}})  # fmt: skip


async def stage_cost(backend: str, model: str, n: int) -> dict[str, float]:
    """What the cache stage costs a miss, in process: plan and lookup before the upstream,
    the tap, and the write after the response (awaited here, so that it is counted).
    Microseconds of CPU and of wall time per request; `plain` has no cache."""
    from gateway.cache import stage
    from gateway.context import Attempt, RequestContext
    from gateway.policy.loader import LoadedPolicy, parse_texts
    from gateway.providers.base import Completion
    from gateway.requests import ParsedRequest
    from gateway.runtime import Runtime
    from gateway.tasks import TaskOwner

    policy = parse_texts([("bench", STAGE_POLICY.format(backend=backend))])
    runtime = Runtime(LoadedPolicy(policy, "bench", ()))
    tasks = TaskOwner()

    async def one(i: int) -> None:
        ctx = RequestContext(f"r{i}", "POST", "/v1/chat/completions")
        body = {"model": model, "temperature": 0,
                "messages": [{"role": "user", "content": f"Hello {i}"}]}  # fmt: skip
        call = ParsedRequest("chat", body, model, False)
        if await stage.lookup(runtime, ctx, call, None) is not None:
            raise AssertionError("every request here is a miss")
        stage.tap(ctx, Completion(ANSWER))
        ctx.status, ctx.provider, ctx.upstream_model = 200, "mock", "m"
        ctx.attempts.append(Attempt("mock", "m", 200, 0.001, system="openai"))
        if ctx.cache is not None:
            stage.commit(tasks, ctx)
            await tasks.join(cancel=False)

    for i in range(200):
        await one(-i - 1)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        await one(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await runtime.aclose()
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}


def miss_costs(redis_url: str, n: int) -> dict[str, dict[str, float]]:
    redis = f", backend: redis, redis_url: '{redis_url}'"
    return {name: asyncio.run(stage_cost(backend, model, n))
            for name, backend, model in (("plain", "", "plain"), ("memory", "", "cached"),
                                         ("redis", redis, "cached"))}  # fmt: skip


def redis_round_trip(url: str, n: int) -> float:
    import redis

    client = redis.Redis.from_url(url)
    client.get("warm")
    samples = []
    for i in range(n):
        started = time.perf_counter()
        client.get(f"llmgw:c:bench:{i}")
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def load(port: int, unique_share: float, seconds: float) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", url, orjson.dumps(CHAT).decode(),
         "--concurrency", "20", "--duration", str(seconds), "--unique-share", str(unique_share)],
        capture_output=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    result: dict[str, float] = orjson.loads(out.stdout)
    return result


async def semantic_lookups(n: int, redis_url: str | None = None) -> dict[str, float]:
    """Semantic misses against a partition of 1,000 other questions: the embedding, the
    neighbour search, the candidates' guard (memory; or Redis: one GET of the
    partition's vectors, ~1.6 MB)."""
    from gateway.cache.entry import Entry
    from gateway.cache.redis_store import RedisIndex, RedisStore, connect
    from gateway.cache.response_cache import Embedder, Lookup, SemanticCache
    from gateway.cache.store import EntryStore, MemoryIndex, MemoryStore, VectorIndex
    from gateway.policy.models import CacheConfig

    client = connect(redis_url, 5.0) if redis_url else None
    store: EntryStore = RedisStore(client, "bench", 5.0) if client else MemoryStore(64)
    index: VectorIndex = (RedisIndex(store, 2000) if isinstance(store, RedisStore)
                          else MemoryIndex(2000, 100_000))  # fmt: skip
    cache = SemanticCache("bench", CacheConfig(type="semantic"), store, index=index,
                          embedder=Embedder())  # fmt: skip
    rng = np.random.default_rng(1)
    entry = Entry("mock", "m", "openai", body=b'{"choices":[]}').encode()
    for i in range(1000):  # a full partition of other questions
        vector = rng.standard_normal(384).astype(np.float32)
        await store.put("ns", f"k{i}", entry, 3600)
        await index.add("ns:p", f"k{i}", vector / np.linalg.norm(vector), 3600)
    topics = ["reset my password", "cancel my order", "the capital of Peru",
              "sort a list in Go", "the weather in Oslo"]  # fmt: skip
    samples = []
    for i in range(n + 10):
        text = f"Question {i}: how do I {topics[i % len(topics)]}? Please answer briefly."
        started = time.perf_counter()
        await cache.lookup(Lookup("ns", f"q{i}", partition="ns:p", text=text))
        if i >= 10:
            samples.append(time.perf_counter() - started)
    if client is not None:
        await store.clear()
        await client.aclose()
    out = {"p50_ms": ms(samples, 0.5), "p95_ms": ms(samples, 0.95)}
    for size in (100, 1000, 10_000):
        matrix = rng.standard_normal((size, 384)).astype(np.float32)
        query = matrix[0]
        best = min(timeit_once(lambda m=matrix, q=query: np.argsort(-(m @ q))[:4])
                   for _ in range(50))  # fmt: skip
        out[f"search_{size}_us"] = best * 1e6
    return out


def timeit_once(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="a few seconds: the script works")
    args = parser.parse_args()
    n, seconds = (100, 1.0) if args.smoke else (2000, 5.0)
    from tests.cache.conftest import RedisServer

    redis_server = RedisServer(free_port()).start()
    mock_port = free_port()
    ports = {"plain": free_port(), "memory": free_port(), "redis": free_port()}
    with tempfile.TemporaryDirectory() as tmp_dir:
        paths = write_policies(Path(tmp_dir), mock_port, redis_server.url)
        mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
        try:
            with process(mock, lambda: answers(mock_port)), \
                 process(gateway(paths["plain"], ports["plain"]), lambda: answers(ports["plain"])) as plain, \
                 process(gateway(paths["memory"], ports["memory"]), lambda: answers(ports["memory"])) as memory, \
                 process(gateway(paths["redis"], ports["redis"]), lambda: answers(ports["redis"])) as redis_gw:  # fmt: skip
                figures = run(n, seconds, mock_port, ports,
                              {"plain": plain, "memory": memory, "redis": redis_gw},
                              redis_server.url)  # fmt: skip
            lookups = 50 if args.smoke else 500
            figures["semantic"] = asyncio.run(semantic_lookups(lookups))
            figures["semantic_redis"] = asyncio.run(semantic_lookups(lookups, redis_server.url))
        finally:
            redis_server.stop()
    lines = report(figures)
    if not args.smoke:
        write_figures(Path(__file__).with_name("cache.txt"), "python -m benchmarks.cache", lines)


def run(n: int, seconds: float, mock_port: int, ports: dict[str, int],
        procs: dict[str, subprocess.Popen[bytes]], redis_url: str) -> dict[str, Any]:  # fmt: skip
    time.sleep(0.3)  # the warm-up request's entry is written
    seq = sequential({"direct": mock_port, "passthrough": ports["plain"],
                      "memory hit": ports["memory"], "redis hit": ports["redis"]}, n, False,
                     CHAT)  # fmt: skip
    cpu = miss_costs(redis_url, n)
    throughput = {name: load(ports[name], 0.1, seconds) for name in ("plain", "memory", "redis")}
    return {"sequential": seq, "cpu_us": cpu, "throughput": throughput,
            "redis_rtt_us": redis_round_trip(redis_url, n)}  # fmt: skip


def report(f: dict[str, Any]) -> list[str]:
    seq, cpu, tput, sem = f["sequential"], f["cpu_us"], f["throughput"], f["semantic"]
    rows = [(f"{name}: median / p99", f"{statistics.median(v) * 1000:.3f} / {ms(v, 0.99):.3f} ms")
            for name, v in seq.items()]  # fmt: skip
    rows += [
        ("memory hit vs direct mock", f"{statistics.median(seq['memory hit']) / statistics.median(seq['direct']):.2f}x"),
        ("memory hit vs passthrough", f"{statistics.median(seq['memory hit']) / statistics.median(seq['passthrough']):.2f}x"),
        ("stage CPU, model without a cache", f"{cpu['plain']['cpu_us']:.1f} us (the harness)"),
        ("CPU added by a miss, memory", f"{cpu['memory']['cpu_us'] - cpu['plain']['cpu_us']:.1f} us  (target <= 20 us)"),
        ("CPU added by a miss, redis", f"{cpu['redis']['cpu_us'] - cpu['plain']['cpu_us']:.1f} us (GET before, SET after; wall {cpu['redis']['wall_us']:.0f} us)"),
        ("redis GET round trip (median)", f"{f['redis_rtt_us']:.0f} us"),
        ("semantic lookup p50 / p95, memory", f"{sem['p50_ms']:.2f} / {sem['p95_ms']:.2f} ms  (target p50 <= 5 ms)"),
        ("semantic lookup p50 / p95, redis", f"{f['semantic_redis']['p50_ms']:.2f} / {f['semantic_redis']['p95_ms']:.2f} ms"),
        ("neighbour search 100/1k/10k", f"{sem['search_100_us']:.0f} / {sem['search_1000_us']:.0f} / {sem['search_10000_us']:.0f} us"),
    ]  # fmt: skip
    rows += [(f"rps at 20 concurrent, 90% hits, {name}",
              f"{t['rps']:.0f} (p99 {t['p99_ms']:.1f} ms, errors {t['errors']:.0f})")
             for name, t in tput.items()]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
