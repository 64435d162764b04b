"""Side-by-side benchmark: the mock directly, our gateway, LiteLLM's proxy and Portkey's
gateway, same mock, same machine, same run, beside the floor (a bare relay on uvicorn and
aiohttp, `benchmarks.floor_app`). Writes BENCHMARKS.md (and plots).

    python -m benchmarks.suite            # full suite (~25 minutes; installs the peers)
    python -m benchmarks.suite --smoke    # seconds: direct, ours and the floor (CI)

Where Debian's nginx is installed, it is timed beside the floor as a second yardstick:
what a relay written in C adds on this machine.

Scenarios: 1 sequential latency (non-stream), 2 streaming (time to first chunk and gaps
between chunks), 3 throughput at 1/20/100 concurrent with `hey` and the highest rps
whose p99 stays within 25 ms, 4 memory at idle and over a soak, 5 our telemetry and
guardrails on vs off, and peers at their recommended worker counts.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from benchmarks import peers
from benchmarks.mock_upstream import free_port
from benchmarks.peers import Target
from benchmarks.report import write_report

CHAT = {"model": "mock-model", "messages": [{"role": "user", "content": "Hello"}]}
STREAM = {"model": "mock-stream", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
FULL = """
telemetry:
  duckdb: {db}
guardrails:
  secrets: {{type: secrets, action: block}}
  pii: {{type: pii, action: redact}}
"""
FULL_CHAIN = "    guardrails: {input: [secrets, pii], output: [secrets]}\n"
YARDSTICKS = ("floor", "nginx")  # timed in sections 1-3 only: they are not gateways


def request(conn: http.client.HTTPConnection, target: Target, body: bytes) -> None:
    conn.request("POST", target.path, body, {"content-type": "application/json", **target.headers})


def sequential(
    targets: list[Target], n: int, prompt: Callable[[int], str] | None = None
) -> dict[str, list[float]]:
    """Interleaved round robin, so drift hits every target alike. `prompt(i)`: the i-th
    request's user message (default: the same one every time)."""
    conns = {t.name: http.client.HTTPConnection("127.0.0.1", t.port) for t in targets}
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    for i in range(n + n // 10):
        body = orjson.dumps(with_prompt(CHAT, prompt(i)) if prompt else CHAT)
        for t in targets:
            started = time.perf_counter()
            request(conns[t.name], t, body)
            response = conns[t.name].getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{t.name}: HTTP {response.status}")
            if i >= n // 10:
                out[t.name].append(time.perf_counter() - started)
    return out


def streaming(
    targets: list[Target], n: int, prompt: Callable[[int], str] | None = None
) -> dict[str, dict[str, list[float]]]:
    """Time to the first content chunk and the gaps between content chunks."""
    out: dict[str, dict[str, list[float]]] = {t.name: {"ttfc": [], "gaps": []} for t in targets}
    conns = {t.name: http.client.HTTPConnection("127.0.0.1", t.port) for t in targets}
    for i in range(n):
        body = orjson.dumps(with_prompt(STREAM, prompt(i)) if prompt else STREAM)
        for t in targets:
            started = time.perf_counter()
            request(conns[t.name], t, body)
            response = conns[t.name].getresponse()
            arrivals, buffer = [], b""
            while chunk := response.read1(65536):
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    compact = event.replace(b" ", b"")
                    if b'"content":"' in compact and b'"content":""' not in compact:
                        arrivals.append(time.perf_counter())
            if not arrivals:
                raise RuntimeError(f"{t.name}: no content chunks")
            out[t.name]["ttfc"].append(arrivals[0] - started)
            out[t.name]["gaps"] += [b - a for a, b in itertools.pairwise(arrivals)]
    return out


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0]}  # fmt: skip


def write_figures(path: Path, command: str, lines: list[str]) -> None:
    """A plain-text result file (`benchmarks/idle.txt`, `marks.txt`): the command, the
    date and the machine, then the lines as printed."""
    m = machine()
    header = f"{command}, {time.strftime('%Y-%m-%d')}, {m['cpus']} CPUs, {m['platform']}, Python {m['python']}"
    path.write_text("\n".join([header, "", *lines]) + "\n")


def against_direct(direct: Target, targets: list[Target], n: int, streams: int) -> dict[str, Any]:
    """Scenarios 1 and 2, each target alternating with direct, its own baseline at the same
    cadence. A round robin over all targets would time each gateway after the others'
    leftover work (LiteLLM keeps a core busy for milliseconds after it answers) and after
    a longer sleep (this VM wakes idle processes slowly: `benchmarks.idle`)."""
    seq: dict[str, dict[str, float]] = {}
    stream: dict[str, dict[str, float]] = {}
    pooled: dict[str, list[float]] = {"latency": [], "ttfc": [], "gaps": []}
    for t in targets:
        pair = sequential([direct, t], n)
        pooled["latency"] += pair["direct"]
        base, ours = stats(pair["direct"]), stats(pair[t.name])
        seq[t.name] = {**ours, **{f"added_{k}": v - base[k] for k, v in ours.items()}}
        flows = streaming([direct, t], streams)
        pooled["ttfc"] += flows["direct"]["ttfc"]
        pooled["gaps"] += flows["direct"]["gaps"]
        base, ours = stream_stats(flows["direct"]), stream_stats(flows[t.name])
        stream[t.name] = {**ours, **{f"added_{k}": v - base[k] for k, v in ours.items()}}
    return {
        "sequential": {"direct": stats(pooled["latency"]), **seq},
        "streaming": {"direct": stream_stats(pooled), **stream},
    }


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"median_ms": statistics.median(ordered) * 1000, "p99_ms": p99 * 1000}


def stream_stats(samples: dict[str, list[float]]) -> dict[str, float]:
    return {"ttfc_ms": statistics.median(samples["ttfc"]) * 1000,
            "gap_ms": statistics.median(samples["gaps"]) * 1000}  # fmt: skip


def with_prompt(body: dict[str, Any], prompt: str) -> dict[str, Any]:
    return {**body, "messages": [{"role": "user", "content": prompt}]}


def header_args(target: Target) -> list[str]:
    return [arg for k, v in target.headers.items() for arg in ("-H", f"{k}: {v}")]


def hey(target: Target, concurrency: int, seconds: float = 0, total: int = 0) -> dict[str, float]:
    """`hey` (Go) as the load client; its own CPU time is reported with the figures."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(orjson.dumps(CHAT))
    command = ["hey", "-c", str(concurrency), "-m", "POST", "-T", "application/json", "-D", f.name]
    command += ["-z", f"{seconds}s"] if seconds else ["-n", str(total)]
    command += header_args(target)
    started = os.times()
    text = subprocess.run([*command, target.url], capture_output=True, text=True, check=True,
                          timeout=(seconds or 3600) + 120).stdout  # fmt: skip
    ended = os.times()
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%+ in ([\d.]+) secs", text)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", text))
    ok = int(codes.get("200", 0))
    errors = sum(int(v) for v in codes.values()) - ok
    cpu = (ended.children_user - started.children_user) + (ended.children_system - started.children_system)  # fmt: skip
    return {"rps": rps, "p99_ms": float(p99.group(1)) * 1000 if p99 else float("nan"),
            "ok": ok, "errors": errors, "client_cpu_s": cpu}  # fmt: skip


def best_under(target: Target, seconds: float, limit_ms: float = 25.0) -> dict[str, float]:
    """The highest rps whose p99 stays within `limit_ms`, over a concurrency sweep."""
    best = {"rps": 0.0, "p99_ms": float("nan"), "concurrency": 0.0}
    for concurrency in (1, 2, 4, 8, 16, 32, 64):
        run = hey(target, concurrency, seconds)
        if run["p99_ms"] <= limit_ms and run["rps"] > best["rps"]:
            best = {"rps": run["rps"], "p99_ms": run["p99_ms"], "concurrency": concurrency}
        if run["p99_ms"] > limit_ms * 2:
            break
    return best


def soak(target: Target, total: int, seconds_cap: float) -> dict[str, Any]:
    """RSS before, during and after `total` requests at 20 concurrent (or until the cap)."""
    samples = [(0.0, target.rss_mb())]
    started = time.monotonic()
    proc = subprocess.Popen(
        ["hey", "-c", "20", "-n", str(total), "-m", "POST", "-T", "application/json",
         "-d", orjson.dumps(CHAT).decode(), *header_args(target), target.url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while proc.poll() is None:
        time.sleep(2)
        samples.append((time.monotonic() - started, target.rss_mb()))
        if time.monotonic() - started > seconds_cap:
            proc.terminate()
    out = (proc.communicate()[0] or b"").decode()
    done = sum(int(v) for v in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    rss = [r for _, r in samples]
    warm = rss[min(2, len(rss) - 1)]
    return {"idle_mb": rss[0], "warm_mb": warm, "end_mb": rss[-1], "peak_mb": max(rss),
            "growth": (rss[-1] - warm) / warm if warm else 0.0, "requests": done,
            "seconds": time.monotonic() - started, "samples": samples}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    }
    mock_port = free_port()
    with ExitStack() as stack:
        peers.PEERS.mkdir(exist_ok=True)
        stack.enter_context(peers.started("mock", peers.mock(mock_port, 20, 10.0), mock_port, {}))
        direct = Target("direct", mock_port, subprocess.Popen(["true"]))
        targets = [direct, stack.enter_context(peers.ours("ours", peers.our_policy(mock_port)))]
        targets.append(stack.enter_context(peers.floor(mock_port)))
        if shutil.which("nginx"):  # a relay written in C, where Debian's nginx is installed
            targets.append(stack.enter_context(peers.nginx(mock_port)))
        if not args.smoke:
            targets.append(stack.enter_context(peers.litellm(mock_port)))
            targets.append(stack.enter_context(peers.portkey(mock_port)))
        results["idle_rss_mb"] = {t.name: t.rss_mb() for t in targets[1:]}
        results.update(against_direct(direct, targets[1:], args.requests, args.streams))
        results["throughput"] = {t.name: {c: hey(t, c, args.duration) for c in (1, 20, 100)}
                                 for t in targets}  # fmt: skip
        gateways = [t for t in targets if t.name not in YARDSTICKS]
        results["best_p99_25ms"] = {t.name: best_under(t, max(args.duration / 2, 1))
                                    for t in gateways}  # fmt: skip
        results["soak"] = {
            t.name: soak(t, args.soak if t.name == "ours" else args.peer_soak, args.soak_cap)
            for t in gateways[1:]
        }
    results.update(features(mock_port, args))
    if not args.smoke:
        results.update(workers(args))
    return results


def features(mock_port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Scenario 5: ours plain vs with DuckDB + OTLP spans + default guardrails."""
    from tests.telemetry.otlp_receiver import HttpReceiver

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        stack.enter_context(peers.started("mock", peers.mock(mock_port, 20, 10.0), mock_port, {}))
        receiver = stack.enter_context(HttpReceiver(count_only=True))
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        try:
            full_policy = peers.our_policy(mock_port, FULL_CHAIN) + FULL.format(
                db=Path(tmp) / "requests.duckdb"
            )
            full = stack.enter_context(peers.ours("ours-full", full_policy))
        finally:
            del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
        plain_policy = peers.our_policy(mock_port) + "telemetry:\n  otel: false\n"
        plain = stack.enter_context(peers.ours("ours-plain", plain_policy))
        direct = Target("direct", mock_port, subprocess.Popen(["true"]))
        figures = against_direct(direct, [plain, full], args.requests, args.streams)
        figures["rps20"] = {t.name: hey(t, 20, args.duration) for t in (plain, full)}
        figures["soak"] = soak(full, args.soak, args.soak_cap)  # RSS with everything on
        figures["spans_received"] = receiver.received.span_count
    return {"features": figures}


def workers(args: argparse.Namespace) -> dict[str, Any]:
    """Each at its recommended worker count on these 2 cores: ours 2, LiteLLM 2 (one per
    core, its docs' advice), Portkey 1 (a single Node process)."""
    mock_port = free_port()
    out: dict[str, Any] = {}
    with ExitStack() as stack:
        stack.enter_context(peers.started("mock", peers.mock(mock_port, 20, 10.0), mock_port, {}))
        for target in (
            stack.enter_context(peers.ours("ours-2w", peers.our_policy(mock_port), workers=2)),
            stack.enter_context(peers.litellm(mock_port, workers=2)),
        ):
            out[target.name] = hey(target, 20, args.duration)
    return {"workers": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--soak", type=int, default=1_000_000, help="requests (ours)")
    parser.add_argument("--peer-soak", type=int, default=100_000, help="requests (peers)")
    parser.add_argument("--soak-cap", type=float, default=900, help="seconds per soak at most")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--from-json", type=Path, help="rewrite the report from saved figures")
    args = parser.parse_args()
    if args.from_json:
        write_report(orjson.loads(args.from_json.read_bytes()), args.out)
        return
    if shutil.which("hey") is None:  # before minutes of installing and measuring
        raise SystemExit("benchmarks.suite needs `hey` as its load client: apt-get install hey")
    if args.smoke:
        args.requests, args.streams, args.duration = 50, 5, 1.0
        args.soak = args.peer_soak = 2000
        args.out = Path(tempfile.gettempdir()) / "BENCHMARKS.smoke.md"
    results = run(args)
    results["machine"] = machine()
    if not args.smoke:
        results["machine"]["litellm"] = peers.litellm_version()
        results["machine"]["portkey"] = peers.PORTKEY_SPEC
    figures = args.out.with_suffix(".json")
    figures.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    write_report(orjson.loads(figures.read_bytes()), args.out)
    print(f"wrote {args.out} and {figures}")


if __name__ == "__main__":
    main()
