"""How much of the stream's added time to first chunk is idleness, not gateway work.

    python -m benchmarks.idle           # prints, and writes benchmarks/idle.txt
    python -m benchmarks.idle --smoke   # seconds; writes nothing

1. Our gateway vs the mock directly, streams whose chunks come back to back vs 10 ms
   apart (the suite's streams): added time to the first content chunk.
2. aiohttp (the gateway's upstream client) against the same mock, non-stream, after 0,
   2 and 20 ms of idleness between requests: time to the response headers.
3. Sections 1 and 2 of the suite (sequential added median, added time to the first chunk
   of streams 10 ms apart) for ours, the floor and nginx, twice: as the machine idles,
   then with the CPUs kept out of idle states (a PM QoS request of 0 us on
   /dev/cpu_dma_latency, held while the file is open; needs root, skipped without). What
   moves between the two is wake-up latency, not work. Evidence only: a gateway that
   held this would burn its cores while idle.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import aiohttp
import orjson

from benchmarks import peers
from benchmarks.mock_upstream import free_port
from benchmarks.peers import Target
from benchmarks.suite import CHAT, against_direct, streaming, write_figures


def say(out: list[str], line: str) -> None:
    print(line, flush=True)
    out.append(line)


def first_chunk(out: list[str], streams: int) -> None:
    for interval_ms in (0.0, 10.0):
        mock_port = free_port()
        with ExitStack() as stack:
            peers.PEERS.mkdir(exist_ok=True)
            command = peers.mock(mock_port, 20, interval_ms)
            stack.enter_context(peers.started("mock", command, mock_port, {}))
            direct = Target("direct", mock_port, subprocess.Popen(["true"]))
            ours = stack.enter_context(peers.ours("ours", peers.our_policy(mock_port)))
            result = streaming([direct, ours], streams)
        d, o = (statistics.median(result[n]["ttfc"]) * 1000 for n in ("direct", "ours"))
        say(out, f"chunks {interval_ms:>4} ms apart: first chunk direct {d:.3f} ms, "
              f"ours {o:.3f} ms, added {o - d:.3f} ms")  # fmt: skip


async def _headers_after_idle(url: str, idle_s: float, n: int) -> float:
    body = orjson.dumps(CHAT)
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            started = time.perf_counter()
            async with session.post(
                url, data=body, headers={"content-type": "application/json"}
            ) as r:
                times.append(time.perf_counter() - started)
                await r.read()
            await asyncio.sleep(idle_s)
    return statistics.median(times[n // 10 :]) * 1000


def idle_hop(out: list[str], n: int) -> None:
    port = free_port()
    with peers.started("mock", peers.mock(port, 20, 0.0), port, {}):
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for idle_ms in (0, 2, 20):
            ms = asyncio.run(_headers_after_idle(url, idle_ms / 1000, n))
            say(out, f"aiohttp to the mock after {idle_ms:>2} ms idle: headers in {ms:.3f} ms")


@contextmanager
def cpus_awake() -> Iterator[bool]:
    """Keep every CPU out of idle states while inside (True), or do nothing (False) where
    the kernel's PM QoS file cannot be opened."""
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError:
        yield False
        return
    try:
        os.write(fd, struct.pack("i", 0))
        yield True
    finally:
        os.close(fd)


def awake_vs_idle(out: list[str], n: int, streams: int) -> None:
    mock_port = free_port()
    with ExitStack() as stack:
        peers.PEERS.mkdir(exist_ok=True)
        stack.enter_context(peers.started("mock", peers.mock(mock_port, 20, 10.0), mock_port, {}))
        direct = Target("direct", mock_port, subprocess.Popen(["true"]))
        targets = [stack.enter_context(peers.ours("ours", peers.our_policy(mock_port))),
                   stack.enter_context(peers.floor(mock_port))]  # fmt: skip
        if shutil.which("nginx"):
            targets.append(stack.enter_context(peers.nginx(mock_port)))
        for label in ("idling", "kept awake") * 2:  # alternating: drift hits both alike
            with cpus_awake() if label == "kept awake" else nullcontext(True) as held:
                if not held:
                    say(out, "CPUs kept awake: skipped (/dev/cpu_dma_latency not writable)")
                    return
                r = against_direct(direct, targets, n, streams)
            for t in targets:
                seq, stream = r["sequential"][t.name], r["streaming"][t.name]
                say(out, f"{label:>10}: {t.name:<6} added median {seq['added_median_ms']:.3f} ms, "
                      f"added first chunk {stream['added_ttfc_ms']:.3f} ms")  # fmt: skip


def main() -> None:
    smoke = "--smoke" in sys.argv
    out: list[str] = []
    first_chunk(out, 20 if smoke else 200)
    idle_hop(out, 30 if smoke else 300)
    awake_vs_idle(out, *((50, 5) if smoke else (1000, 100)))
    if not smoke:
        write_figures(Path(__file__).with_name("idle.txt"), "python -m benchmarks.idle", out)


if __name__ == "__main__":
    main()
