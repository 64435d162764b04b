"""What the gateway adds on top of a direct call, measured in one run against the same mock.

    python -m benchmarks.proxy_overhead            # full run (~1 minute)
    python -m benchmarks.proxy_overhead --smoke    # a few seconds: the scripts still work

Each side runs in its own process: the mock upstream, the gateway (`gateway serve`, access
log on, as shipped) and the load client. Sequential figures interleave direct and gateway
requests so drift hits both alike; ratios are against the direct baseline of this run.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from benchmarks.mock_upstream import DEFAULT_MODEL, free_port

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "Hello"}]}
STREAM = {**CHAT, "stream": True}
POLICY = """\
version: 1
providers:
  mock:
    type: openai
    base_url: http://127.0.0.1:{port}/v1
models:
  {model}:
    provider: mock
    upstream_model: {model}
"""


@contextmanager
def process(
    args: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 30
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not start")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def answers(port: int) -> bool:
    try:
        post(http.client.HTTPConnection("127.0.0.1", port, timeout=2), "/v1/chat/completions", CHAT)
        return True
    except OSError:
        return False


def post(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> bytes:
    conn.request("POST", path, orjson.dumps(body), {"content-type": "application/json"})
    return conn.getresponse().read()


def time_request(conn: http.client.HTTPConnection, body: bytes, stream: bool) -> float:
    """Seconds to the whole response, or (streams) to the first `data:` event."""
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    response = conn.getresponse()
    if not stream:
        response.read()
        return time.perf_counter() - started
    first = response.read1(65536)
    while b"data:" not in first:
        first += response.read1(65536)
    elapsed = time.perf_counter() - started
    response.read()
    return elapsed


def sequential(ports: dict[str, int], n: int, stream: bool,
               request: dict[str, Any] | None = None) -> dict[str, list[float]]:  # fmt: skip
    body = orjson.dumps(request or (STREAM if stream else CHAT))
    conns = {name: http.client.HTTPConnection("127.0.0.1", port) for name, port in ports.items()}
    samples: dict[str, list[float]] = {name: [] for name in ports}
    for i in range(n + n // 10):
        for name, conn in conns.items():
            elapsed = time_request(conn, body, stream)
            if i >= n // 10:  # the first tenth warms up
                samples[name].append(elapsed)
    return samples


def load(port: int, concurrency: int, duration: float) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", url, orjson.dumps(CHAT).decode(),
         "--concurrency", str(concurrency), "--duration", str(duration)],
        capture_output=True, check=True, timeout=duration + 60,
    )  # fmt: skip
    result: dict[str, float] = orjson.loads(out.stdout)
    return result


def ms(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def report(
    seq: dict[str, list[float]], ttft: dict[str, list[float]], tput: dict[str, Any]
) -> dict[str, Any]:
    direct, gw = seq["direct"], seq["gateway"]
    added_median = (statistics.median(gw) - statistics.median(direct)) * 1000
    added_p99 = ms(gw, 0.99) - ms(direct, 0.99)
    added_ttft = (statistics.median(ttft["gateway"]) - statistics.median(ttft["direct"])) * 1000
    ratio = tput["gateway"]["rps"] / tput["direct"]["rps"]
    rows = [
        ("sequential median, direct", f"{statistics.median(direct) * 1000:.3f} ms", ""),
        ("sequential median, gateway", f"{statistics.median(gw) * 1000:.3f} ms", ""),
        ("median added latency", f"{added_median:.3f} ms", "target <= 0.5 ms"),
        ("p99 added latency", f"{added_p99:.3f} ms", ""),
        ("stream TTFT median, direct", f"{statistics.median(ttft['direct']) * 1000:.3f} ms", ""),
        ("stream TTFT median, gateway", f"{statistics.median(ttft['gateway']) * 1000:.3f} ms", ""),
        ("added time to first chunk", f"{added_ttft:.3f} ms", "target <= 0.5 ms"),
        ("rps at 20 concurrent, direct", f"{tput['direct']['rps']:.0f} (p99 {tput['direct']['p99_ms']:.1f} ms)", ""),
        ("rps at 20 concurrent, gateway", f"{tput['gateway']['rps']:.0f} (p99 {tput['gateway']['p99_ms']:.1f} ms)", "p99 target <= 30 ms"),
        ("throughput ratio gateway/direct", f"{ratio:.2f}x", "target >= 0.35x"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<28} {target}")
    return {
        "added_median_ms": added_median, "added_p99_ms": added_p99, "added_ttft_ms": added_ttft,
        "throughput": tput, "throughput_ratio": ratio,
        "errors": tput["direct"]["errors"] + tput["gateway"]["errors"],
    }  # fmt: skip


def report_floor(mock_port: int, n: int) -> None:
    """A bare ASGI + aiohttp proxy on uvicorn: what any gateway here pays before its logic."""
    floor_port = free_port()
    command = [sys.executable, "-m", "benchmarks.floor_app", str(floor_port), str(mock_port)]
    with process(command, lambda: answers(floor_port)):
        seq = sequential({"direct": mock_port, "floor": floor_port}, n, stream=False)
    added = (statistics.median(seq["floor"]) - statistics.median(seq["direct"])) * 1000
    print(f"floor (bare ASGI + aiohttp on uvicorn): median added {added:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--gateway-arg", action="append", default=[], help="extra `gateway serve` flag"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--floor", action="store_true", help="also measure benchmarks.floor_app")
    args = parser.parse_args()
    n, duration = (200, 1.0) if args.smoke else (args.requests, args.duration)

    mock_port, gw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "bench.yaml"
        policy.write_text(POLICY.format(port=mock_port, model=DEFAULT_MODEL))
        mock_cmd = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
        gw_cmd = [sys.executable, "-m", "gateway", "serve", "--policy", str(policy),
                  "--port", str(gw_port), *args.gateway_arg]  # fmt: skip
        with (
            process(mock_cmd, lambda: answers(mock_port)),
            process(gw_cmd, lambda: answers(gw_port)),
        ):
            ports = {"direct": mock_port, "gateway": gw_port}
            if args.floor:
                report_floor(mock_port, n)
            seq = sequential(ports, n, stream=False)
            ttft = sequential(ports, n // 2, stream=True)
            tput = {name: load(port, args.concurrency, duration) for name, port in ports.items()}
    print(f"# {os.cpu_count()} CPUs, python {sys.version.split()[0]}, n={n}, {duration}s load")
    figures = report(seq, ttft, tput)
    if args.json:
        args.json.write_text(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    if figures["errors"]:
        raise SystemExit(f"{figures['errors']} requests failed")


if __name__ == "__main__":
    main()
