"""A closed-loop HTTP load client (aiohttp), run as its own process so it does not share an
interpreter with what it measures. Prints one JSON line: requests, rps, p50/p99 in ms.

    python -m benchmarks.load URL BODY_JSON --concurrency 20 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import aiohttp
import orjson


async def worker(
    session: aiohttp.ClientSession, url: str, body: bytes, until: float, latencies: list[float]
) -> int:
    errors = 0
    headers = {"content-type": "application/json"}
    while time.perf_counter() < until:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                errors += 1
        latencies.append(time.perf_counter() - started)
    return errors


async def run(url: str, body: bytes, concurrency: int, duration: float) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm: list[float] = []
        await asyncio.gather(
            *(
                worker(session, url, body, time.perf_counter() + 0.5, warm)
                for _ in range(concurrency)
            )
        )
        latencies: list[float] = []
        started = time.perf_counter()
        until = started + duration
        errors = await asyncio.gather(
            *(worker(session, url, body, until, latencies) for _ in range(concurrency))
        )
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "warm_up_requests": len(warm),
        "errors": sum(errors),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.body.encode(), args.concurrency, args.duration))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
