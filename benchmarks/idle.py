"""How much of the stream's added time to first chunk is idleness, not gateway work.

    python -m benchmarks.idle

1. Our gateway vs the mock directly, streams whose chunks come back to back vs 10 ms
   apart (the suite's streams): added time to the first content chunk.
2. aiohttp (the gateway's upstream client) against the same mock, non-stream, after 0,
   2 and 20 ms of idleness between requests: time to the response headers.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

import aiohttp
import orjson

from benchmarks import peers
from benchmarks.mock_upstream import free_port
from benchmarks.peers import Target
from benchmarks.suite import CHAT, streaming


def first_chunk(streams: int) -> None:
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
        print(f"chunks {interval_ms:>4} ms apart: first chunk direct {d:.3f} ms, "
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


def idle_hop(n: int) -> None:
    port = free_port()
    with peers.started("mock", peers.mock(port, 20, 0.0), port, {}):
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for idle_ms in (0, 2, 20):
            ms = asyncio.run(_headers_after_idle(url, idle_ms / 1000, n))
            print(f"aiohttp to the mock after {idle_ms:>2} ms idle: headers in {ms:.3f} ms")


def main() -> None:
    smoke = "--smoke" in sys.argv
    first_chunk(20 if smoke else 200)
    idle_hop(30 if smoke else 300)


if __name__ == "__main__":
    main()
