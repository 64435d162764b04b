"""Where the gateway's time goes under load: py-spy samples `gateway serve` (the thread
holding the GIL, `--gil`) while `hey` keeps 20 requests in flight against it, and the
samples are summed by library, by leaf frame and inclusively.

    python -m benchmarks.profile           # default policy -> benchmarks/profile.txt
    python -m benchmarks.profile --full    # + DuckDB, OTLP to a live receiver, guardrails;
                                           # its OTLP export process sampled too
                                           # -> benchmarks/profile-full.txt

Two samplers at 300 Hz take CPU from the two cores the gateway shares: the rps in the
titles is the rate while sampling, not the gateway's throughput.

Needs Debian's `hey` and py-spy (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks import peers, suite
from benchmarks.mock_upstream import free_port

# the deepest frame on a stack whose file matches one of these names the library the
# sample is charged to (py-spy shortens the OpenTelemetry SDK's paths: matched by tail)
OTLP_ENCODING = "OpenTelemetry OTLP protobuf encoding"
OUR_ENCODING = "gateway/telemetry/spans_to_otlp (OTLP protobuf encoding)"
SDK_SPANS = "OpenTelemetry SDK span processor"
LIBRARIES = (
    ("gateway/telemetry/spans_to_otlp", OUR_ENCODING),
    *((lib, lib) for lib in (
        "gateway/guardrails", "gateway/telemetry", "gateway/", "uvicorn", "starlette",
        "httptools", "asyncio", "prometheus_client", "orjson", "requests", "urllib3",
        "http/client", "socket")),
    ("trace_encoder/", OTLP_ENCODING), ("common/_internal/__init__", OTLP_ENCODING),
    ("trace_exporter/", "OpenTelemetry OTLP HTTP exporter"), ("trace/export/", SDK_SPANS),
    ("_shared_internal/", SDK_SPANS), ("metrics/_internal/", "OpenTelemetry SDK metrics"),
    ("threading", "threading"), ("queue", "queue"),
)  # fmt: skip


def summarise(raw: str, title: str, top: int = 25) -> str:
    """py-spy's raw output (`frame;frame;... count` lines) as three rankings."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    library: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
        deepest = next(
            (label for f in reversed(frames) for needle, label in LIBRARIES if needle in f), "other"
        )
        library[deepest] += n

    def ranking(counts: collections.Counter[str], limit: int) -> list[str]:
        return [f"  {100 * v / max(total, 1):5.1f}%  {k}" for k, v in counts.most_common(limit)]

    return "\n".join([
        f"{title} ({total} samples)", "",
        "by library (the deepest frame of a known library on the stack):",
        *ranking(library, len(LIBRARIES) + 1), "",
        "own time (leaf frame):", *ranking(own, top), "",
        "inclusive time (frames on the stack):", *ranking(inclusive, top * 2), "",
    ])  # fmt: skip


def sample(spy: str, pid: int, args: argparse.Namespace, raw: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` for args.seconds into `raw` (started, not awaited)."""
    command = [spy, "record", "--gil", "--nonblocking", "-r", str(args.rate), "-d",
               str(int(args.seconds)), "-f", "raw", "-o", str(raw), "-p", str(pid)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--full", action="store_true", help="DuckDB + OTLP + guardrails on")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=300, help="samples per second")
    parser.add_argument("--out", type=Path, help="default: profile.txt / profile-full.txt here")
    args = parser.parse_args()
    args.out = args.out or Path(__file__).with_name(
        "profile-full.txt" if args.full else "profile.txt"
    )
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if shutil.which("hey") is None or not Path(spy).exists():
        raise SystemExit("benchmarks.profile needs `hey` (apt-get install hey) and py-spy")
    mock_port = free_port()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        stack.enter_context(peers.started("mock", peers.mock(mock_port, 20, 10.0), mock_port, {}))
        policy = peers.our_policy(mock_port)
        if args.full:
            from tests.telemetry.otlp_receiver import HttpReceiver

            receiver = stack.enter_context(HttpReceiver(count_only=True))
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
            policy = peers.our_policy(mock_port, suite.FULL_CHAIN)
            policy += suite.FULL.format(db=Path(tmp) / "requests.duckdb")
        target = stack.enter_context(peers.ours("ours-profile", policy))
        suite.hey(target, 20, 2)  # warm-up
        pids = {"gateway serve": target.process.pid}
        if args.full:  # and the OTLP export process, its only child
            pids["its OTLP export process"] = peers.process_tree(target.process.pid)[1]
        raws = {name: Path(tmp) / f"{pid}.txt" for name, pid in pids.items()}
        samplers = {name: sample(spy, pid, args, raws[name]) for name, pid in pids.items()}
        load = suite.hey(target, 20, args.seconds + 1)
        variant = "DuckDB + OTLP + guardrails" if args.full else "default policy"
        parts = []
        for name, sampler in samplers.items():
            sampler.wait(60)
            title = (f"py-spy record --gil -r {args.rate} -d {int(args.seconds)} on {name} "
                     f"({variant}) under `hey -c 20`: {load['rps']:,.0f} rps")  # fmt: skip
            parts.append(summarise(raws[name].read_text(), title))
        args.out.write_text("\n".join(parts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
