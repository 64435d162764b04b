"""Memory over a soak of *mixed* traffic: does anything the gateway keeps grow with it?

    python -m benchmarks.soak                      # 50,000 mixed requests -> benchmarks/soak.txt
    python -m benchmarks.soak --smoke              # a few hundred (CI)
    python -m benchmarks.soak --tracemalloc        # in process: what grew, by allocation site

The mix, per 10 requests: 4 chat completions, 2 streams, 1 embedding, 1 request for a
model the policy lacks (a new made-up name each time), 1 malformed request (400), 1
stream the client abandons after its first chunk. The gateway runs as `gateway serve`
with the request log, OTLP-less telemetry and the secrets guardrail on; RSS is sampled
every `--every` requests. Growth is reported after warm-up (the first 20% of requests),
so a flat line after warm-up reads as ~0%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.mock_upstream import DEFAULT_MODEL, free_port
from benchmarks.peers import _rss_kb, process_tree
from benchmarks.suite import write_figures

POLICY = """\
version: 1
{telemetry}
guardrails:
  secrets: {{type: secrets}}
providers:
  mock: {{type: openai, base_url: "http://127.0.0.1:{port}/v1"}}
models:
  {model}: {{provider: mock, upstream_model: {model}, guardrails: {{input: [secrets], output: [secrets]}}}}
"""


def policy_text(db: Path | None, port: int) -> str:
    """With the request log at `db`, or (None) Prometheus metrics only."""
    telemetry = f"telemetry: {{duckdb: {db}, flush_interval_s: 0.5}}" if db else ""
    return POLICY.format(telemetry=telemetry, port=port, model=DEFAULT_MODEL)


CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hello"}]}


def mixed(i: int) -> tuple[str, dict[str, Any] | bytes, str]:
    """(path, body, kind) of the i-th request."""
    kind = ("chat", "chat", "stream", "chat", "embed", "unknown", "chat", "bad", "stream",
            "abandon")[i % 10]  # fmt: skip
    if kind == "stream" or kind == "abandon":
        return "/v1/chat/completions", {**CHAT, "stream": True}, kind
    if kind == "embed":
        return "/v1/embeddings", {"model": DEFAULT_MODEL, "input": "hello"}, kind
    if kind == "unknown":
        return "/v1/chat/completions", {**CHAT, "model": f"made-up-{i}"}, kind
    if kind == "bad":
        return "/v1/chat/completions", b'{"model": "x", "messages": [{"role": "wizard"}]}', kind
    return "/v1/chat/completions", CHAT, kind


async def one(client: httpx.AsyncClient, i: int) -> None:
    path, body, kind = mixed(i)
    content = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    headers = {"content-type": "application/json"}
    if kind in ("stream", "abandon"):
        async with client.stream("POST", path, json=payload, headers=headers) as r:
            async for _ in r.aiter_bytes():
                if kind == "abandon":
                    break
        return
    await client.post(path, json=payload, content=content, headers=headers)


async def drive(base: str, total: int, every: int, sample: Any, concurrency: int = 20) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        next_i = 0

        async def worker() -> None:
            nonlocal next_i
            while next_i < total:
                i = next_i
                next_i += 1
                await one(client, i)
                if i % every == 0:
                    sample(i)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


@contextmanager
def background(
    args: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def rss_mb(pid: int) -> float:
    return sum(_rss_kb(p) for p in process_tree(pid)) / 1024


def report(samples: list[tuple[int, float]], total: int) -> list[str]:
    warm_at = total // 5
    warm = next((mb for i, mb in samples if i >= warm_at), samples[-1][1])
    end = samples[-1][1]
    lines = [f"{total} mixed requests, RSS of `gateway serve` (MB) after n requests:"]
    lines += [f"  {i:>8}  {mb:8.1f}" for i, mb in sorted(samples)]
    lines.append(f"after warm-up ({warm_at} requests): {warm:.1f} -> {end:.1f} MB, "
                 f"{(end - warm) / warm * 100:+.1f}%")  # fmt: skip
    return lines


def run_process(total: int, every: int, no_log: bool = False) -> list[str]:
    mock_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(policy_text(None if no_log else Path(tmp) / "r.duckdb", mock_port))
        mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port),
                "--chunk-interval-ms", "1"]  # fmt: skip
        serve = [sys.executable, "-m", "gateway", "serve", "--policy", str(policy), "--port",
                 str(port), "--no-access-log"]  # fmt: skip
        with background(mock), background(serve, dict(os.environ)) as gateway:
            wait_ready(f"http://127.0.0.1:{port}/healthz")
            samples: list[tuple[int, float]] = []
            asyncio.run(drive(f"http://127.0.0.1:{port}", total, every,
                              lambda i: samples.append((i, rss_mb(gateway.pid)))))  # fmt: skip
            samples.append((total, rss_mb(gateway.pid)))
    return report(samples, total)


def run_tracemalloc(total: int, top: int) -> str:
    """The app in this process (uvicorn in a thread) under tracemalloc: the allocation
    sites that grew between the end of warm-up and the end."""
    from gateway.app import Settings
    from tests.conftest import GatewayServer

    mock_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(policy_text(Path(tmp) / "r.duckdb", mock_port))
        mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
        with background(mock):
            wait_ready(f"http://127.0.0.1:{mock_port}/v1/models")
            tracemalloc.start(12)
            with GatewayServer(Settings(policy_path=str(policy), watch_policy=False,
                                        access_log=False)) as gw:  # fmt: skip
                snapshots: list[tracemalloc.Snapshot] = []
                warm_at = total // 5

                def sample(i: int) -> None:
                    if i == warm_at:
                        snapshots.append(tracemalloc.take_snapshot())

                asyncio.run(drive(gw.base_url, total, 1, sample, concurrency=4))
                time.sleep(1)
                end = tracemalloc.take_snapshot()
            tracemalloc.stop()
    diff = end.compare_to(snapshots[0], "traceback")
    lines = [f"tracemalloc: {total} mixed requests, growth after {total // 5} (top {top}):"]
    for stat in diff[:top]:
        lines.append(f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+8d} blocks")
        lines += [f"      {frame}" for frame in stat.traceback.format()[-6:]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--every", type=int, default=2_500, help="requests between samples")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--no-request-log", action="store_true", help="without telemetry.duckdb")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.every = 400, 100
    if args.tracemalloc:
        print(run_tracemalloc(args.requests, args.top))
        return
    lines = run_process(args.requests, args.every, args.no_request_log)
    print("\n".join(lines))
    if not args.smoke:
        command = f"python -m benchmarks.soak --requests {args.requests}"
        write_figures(Path(__file__).with_name("soak.txt"), command, lines)


if __name__ == "__main__":
    main()
