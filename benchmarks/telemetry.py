"""What telemetry costs, in one run:

1. per-request overhead: a gateway with full telemetry (DuckDB request log, OTLP spans and
   metrics to a live receiver, access log) against one with all of it off, same mock,
   requests interleaved;
2. throughput at 20 concurrent by telemetry backend: none, Prometheus metrics (the
   default), + the DuckDB request log, + OTLP spans and metrics to a live receiver; and
   the CPU time per request of the serving process and of its OTLP export process;
3. OTLP span encoding: `gateway/telemetry/spans_to_otlp.py` against the SDK's encoder on
   the spans of 100 requests (SERVER, CLIENT, three guardrail verdicts each);
4. the DuckDB writer's sustained rows/s;
5. `gateway stats` and `gateway logs` queries over a 10M-row request log, and its bytes/row.

    python -m benchmarks.telemetry [--smoke] [--rows 10000000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import StatusCode

from benchmarks import peers
from benchmarks.mock_upstream import DEFAULT_MODEL, free_port
from benchmarks.proxy_overhead import POLICY, answers, load, process, sequential
from gateway.context import Attempt, RequestContext
from gateway.policy.models import TelemetryConfig
from gateway.stats import LOGS_SQL, STATS_SQL
from gateway.telemetry import spans_to_otlp
from gateway.telemetry.duckdb_sink import DuckDBSink, connect
from gateway.telemetry.export_process import from_record, span_record
from gateway.telemetry.otlp import SCOPE, gateway_resource
from gateway.telemetry.schema import REQUEST_COLUMNS, migrate


def overhead(n: int, tmp: Path) -> float:
    from tests.telemetry.otlp_receiver import HttpReceiver

    mock_port, off_port, on_port = free_port(), free_port(), free_port()
    base = POLICY.format(port=mock_port, model=DEFAULT_MODEL)
    (tmp / "off.yaml").write_text(base + "telemetry:\n  otel: false\n")
    (tmp / "on.yaml").write_text(base + f"telemetry:\n  duckdb: {tmp / 'requests.duckdb'}\n")
    with HttpReceiver() as receiver:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
        off = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--no-access-log",
            "--policy",
            str(tmp / "off.yaml"),
            "--port",
            str(off_port),
        ]
        on = [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--policy",
            str(tmp / "on.yaml"),
            "--port",
            str(on_port),
        ]
        with (
            process(mock, lambda: answers(mock_port)),
            process(off, lambda: answers(off_port)),
            process(on, lambda: answers(on_port), env=env),
        ):
            seq = sequential({"off": off_port, "on": on_port}, n, stream=False)
        spans = len(receiver.received.spans)
    added = (statistics.median(seq["on"]) - statistics.median(seq["off"])) * 1000
    print(f"telemetry off: median {statistics.median(seq['off']) * 1000:.3f} ms")
    print(
        f"telemetry on:  median {statistics.median(seq['on']) * 1000:.3f} ms  ({spans} spans received)"
    )
    print(f"telemetry adds {added:.3f} ms median per request            target <= 0.1 ms")
    return added


def throughput(duration: float, tmp: Path) -> dict[str, float]:
    """rps at 20 concurrent, one telemetry backend added at a time, gateways in turn."""
    from tests.telemetry.otlp_receiver import BlackHole, HttpReceiver

    mock_port = free_port()
    hole = BlackHole(free_port())  # accepts, reads, never answers
    base = POLICY.format(port=mock_port, model=DEFAULT_MODEL)
    variants = {
        "none": "telemetry:\n  otel: false\n",
        "prometheus (default)": "",
        "+ duckdb": f"telemetry:\n  duckdb: {tmp / 'rps.duckdb'}\n",
        "+ duckdb + otlp": f"telemetry:\n  duckdb: {tmp / 'rps-otlp.duckdb'}\n",
        "+ duckdb + otlp, black hole": f"telemetry:\n  duckdb: {tmp / 'rps-hole.duckdb'}\n",
    }
    mock = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(mock_port)]
    rps: dict[str, float] = {}
    with HttpReceiver(count_only=True) as receiver, process(mock, lambda: answers(mock_port)):
        for i, (name, telemetry) in enumerate(variants.items()):
            (tmp / f"rps{i}.yaml").write_text(base + telemetry)
            env = {**os.environ}
            if "otlp" in name:
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
            if "black hole" in name:  # a collector that accepts and never answers
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = (
                    f"http://127.0.0.1:{hole.sock.getsockname()[1]}"
                )
            port = free_port()
            command = [sys.executable, "-m", "gateway", "serve", "--policy",
                       str(tmp / f"rps{i}.yaml"), "--port", str(port)]  # fmt: skip
            with process(command, functools.partial(answers, port), env=env) as gateway:
                before = peers.cpu_seconds(gateway.pid)
                result = load(port, 20, duration)
                after = peers.cpu_seconds(gateway.pid)
            rps[name] = result["rps"]
            done = result["requests"] + result["warm_up_requests"]
            served, exporter = ((a - b) / done * 1e6 for a, b in zip(after, before, strict=True))
            print(f"rps at 20 concurrent, telemetry {name:<28} {rps[name]:,.0f} (p99 "
                  f"{result['p99_ms']:.1f} ms)   CPU per request: serving process {served:.0f} "
                  f"us, OTLP export process {exporter:.0f} us")  # fmt: skip
    hole.close()
    return rps


def request_spans(i: int) -> list[Any]:
    """The five span records of one non-stream request with the default guardrails."""
    trace, server = f"{i:032x}", f"{i:016x}"
    client = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
              "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024",
              "gen_ai.request.stream": False, "server.address": "127.0.0.1", "server.port": 9999,
              "gen_ai.response.id": f"chatcmpl-{i}", "gen_ai.response.finish_reasons": ["stop"],
              "gen_ai.usage.input_tokens": 12 + i % 7, "gen_ai.usage.output_tokens": 20 + i % 5,
              "gen_ai.usage.cache_read.input_tokens": 0, "gateway.usage.estimated": False,
              "gen_ai.usage.reasoning.output_tokens": 0, "gen_ai.usage.cost": 1.2e-05}  # fmt: skip
    records = [
        span_record("POST /v1/chat/completions", SpanKind.SERVER, trace, server, None, False, "01",
                    None, StatusCode.UNSET, i, i + 5, {"http.request.method": "POST",
                    "url.path": "/v1/chat/completions", "http.response.status_code": 200,
                    "gateway.request_id": f"req-{i}", "gateway.model": "gpt-4o-mini",
                    "gateway.guardrail.action": "pass"}),
        span_record("chat gpt-4o-mini", SpanKind.CLIENT, trace, f"{i + 1:016x}", server, False,
                    "01", None, StatusCode.UNSET, i + 1, i + 4, client),
    ]  # fmt: skip
    for n, (name, stage) in enumerate(
        (("secrets", "input"), ("pii", "input"), ("secrets", "output"))
    ):
        attrs = {"gen_ai.operation.name": "apply_guardrail", "gateway.guardrail.name": name,
                 "gateway.guardrail.stage": stage, "gateway.guardrail.action": "pass",
                 "gateway.guardrail.entities": []}  # fmt: skip
        records.append(span_record(f"apply_guardrail {name}", SpanKind.INTERNAL, trace,
                                   f"{i + 2 + n:016x}", server, False, "01", None,
                                   StatusCode.UNSET, i, i + 1, attrs))  # fmt: skip
    return records


def encoding(rounds: int) -> float:
    """us a span for each encoder, best of `rounds`; returns how many times faster ours is."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk

    resource = gateway_resource()
    spans = [from_record(r, resource, SCOPE) for i in range(100) for r in request_spans(i * 8)]
    assert spans_to_otlp.encode_spans(spans) == sdk(spans).SerializePartialToString()
    timings = {}
    for name, encode in (("SDK encode_spans", lambda: sdk(spans).SerializePartialToString()),
                         ("spans_to_otlp", lambda: spans_to_otlp.encode_spans(spans))):  # fmt: skip
        timings[name] = min(timeit.repeat(encode, number=5, repeat=rounds)) / 5 / len(spans) * 1e6
    ratio = timings["SDK encode_spans"] / timings["spans_to_otlp"]
    print("OTLP encoding, us a span: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
          + f" ({ratio:.2f}x faster, same bytes)")  # fmt: skip
    return ratio


def context(i: int) -> RequestContext:
    ctx = RequestContext(f"req-{i:08d}", "POST", "/v1/chat/completions", operation="chat",
                         model="gpt-4o-mini", provider="openai", upstream_model="gpt-4o-mini", status=200)  # fmt: skip
    ctx.attempts.append(Attempt("openai", "gpt-4o-mini", 200, 0.2, span_id="00f067aa0ba902b7"))
    ctx.finished_at = ctx.started + 0.25
    return ctx


def writer(rows: int, tmp: Path) -> float:
    contexts = [context(i) for i in range(rows)]
    sink = DuckDBSink(tmp / "writer.duckdb", TelemetryConfig(flush_interval_s=60))
    started = time.perf_counter()
    for ctx in contexts:
        sink.record(ctx)
    queued = time.perf_counter() - started
    started = time.perf_counter()
    asyncio.run(sink.aclose())  # one flush of everything queued
    elapsed = time.perf_counter() - started
    rate = rows / elapsed
    print(f"writer: {rows} rows in {elapsed:.2f} s = {rate:,.0f} rows/s "
          f"(record() on the request path: {queued / rows * 1e6:.2f} us/row)   target >= 100,000 rows/s")  # fmt: skip
    return rate


def queries(rows: int, tmp: Path) -> float:
    path = tmp / "big.duckdb"
    con = connect(path)
    migrate(con)
    names = [name for name, _ in REQUEST_COLUMNS]
    columns = ", ".join(names[: names.index("target") + 1])  # the ones filled below
    con.execute(f"""
        INSERT INTO requests ({columns}) SELECT
          'req-' || i, md5(i::VARCHAR), now()::TIMESTAMP - to_seconds(i % 86400), 200 + random() * 800,
          50 + random() * 100, 180 + random() * 700, random() * 2, 'POST', '/v1/chat/completions', 'chat',
          i % 3 = 0, ['gpt-4o-mini', 'gpt-4o', 'claude-haiku', 'llama3.2'][1 + i % 4], ['openai', 'anthropic'][1 + i % 2],
          'gpt-4o-mini', 'gpt-4o-mini-2024-07-18', 'chatcmpl-' || i, CASE WHEN i % 50 = 0 THEN 500 ELSE 200 END,
          CASE WHEN i % 50 = 0 THEN '500' END, 'stop', 100 + i % 900, 20 + i % 300, 0, 0,
          ['team-a', 'team-b', NULL][1 + i % 3], NULL, false, 1, substr(md5(i::VARCHAR), 1, 16), 0, false,
          (100 + i % 900) * 0.00000015, (100 + i % 900) * 0.00000015, 0, 'genai-prices',
          CASE WHEN i % 5 = 0 THEN 'hit' ELSE 'miss' END, NULL, NULL, NULL, NULL,
          CASE WHEN i % 5 = 0 THEN i % 3600 END, CASE WHEN i % 5 = 0 THEN (100 + i % 900) * 0.00000015 END,
          'weighted', 'openai/gpt-4o-mini'
        FROM range({rows}) t(i)
    """)  # fmt: skip
    con.execute("CHECKPOINT")
    con.close()
    size = path.stat().st_size
    con = connect(path, read_only=True)
    timings = {}
    for name, sql, params in (
        ("stats --by model", STATS_SQL.format(group="model", label="model"), [86400]),
        ("stats --by key", STATS_SQL.format(group="key_id", label="key"), [86400]),
        ("logs --model gpt-4o", LOGS_SQL, [86400, "gpt-4o", "gpt-4o", None, None, 20]),
    ):
        started = time.perf_counter()
        con.execute(sql, params).fetchall()
        timings[name] = time.perf_counter() - started
    con.close()
    for name, seconds in timings.items():
        print(f"{name} over {rows:,} rows: {seconds:.3f} s                  target < 1 s")
    print(
        f"request log size: {size / rows:.0f} bytes/row ({size / 1e6:.0f} MB for {rows:,} rows)   target <= 200"
    )
    return max(timings.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load")
    parser.add_argument("--writer-rows", type=int, default=300_000)
    parser.add_argument("--writer-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n, rows, writer_rows = (
        (100, 100_000, 20_000) if args.smoke else (args.requests, args.rows, args.writer_rows)
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.writer_only:
            writer(writer_rows, Path(tmp))
            return
        overhead(n, Path(tmp))
        throughput(1.0 if args.smoke else args.duration, Path(tmp))
        encoding(2 if args.smoke else 10)
        # the writer in a fresh process, so the phases before it leave nothing behind
        command = [sys.executable, "-m", "benchmarks.telemetry", "--writer-only"]
        subprocess.run([*command, "--writer-rows", str(writer_rows)], check=True, timeout=600)
        queries(rows, Path(tmp))


if __name__ == "__main__":
    main()
