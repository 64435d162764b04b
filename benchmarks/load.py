"""A closed-loop HTTP load client (aiohttp), run as its own process so it does not share an
interpreter with what it measures. Prints one JSON line: requests, rps, p50/p99 in ms.

    python -m benchmarks.load URL BODY_JSON --concurrency 20 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable

import aiohttp
import orjson


def varied(body: bytes, unique_share: float) -> Callable[[], bytes]:
    """`body` as is, or (a share `unique_share` of requests) with its last message made
    unique: for cache hit rates below 100%."""
    if not unique_share:
        return lambda: body
    doc = orjson.loads(body)
    counter = itertools.count()

    def next_body() -> bytes:
        if random.random() >= unique_share:
            return body
        messages = [*doc["messages"][:-1], {**doc["messages"][-1], "content":
                    f"{doc['messages'][-1]['content']} #{next(counter)}-{random.random()}"}]  # fmt: skip
        return orjson.dumps({**doc, "messages": messages})

    return next_body


async def worker(
    session: aiohttp.ClientSession, url: str, body: Callable[[], bytes], until: float,
    latencies: list[float], extra: dict[str, str] | None = None,
) -> int:  # fmt: skip
    errors = 0
    headers = {"content-type": "application/json", **(extra or {})}
    while time.perf_counter() < until:
        started = time.perf_counter()
        async with session.post(url, data=body(), headers=headers) as response:
            await response.read()
            if response.status != 200:
                errors += 1
        latencies.append(time.perf_counter() - started)
    return errors


async def run(url: str, raw: bytes, concurrency: int, duration: float,
              unique_share: float = 0.0,
              headers: dict[str, str] | None = None) -> dict[str, float]:  # fmt: skip
    body = varied(raw, unique_share)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm: list[float] = []
        await asyncio.gather(
            *(
                worker(session, url, body, time.perf_counter() + 0.5, warm, headers)
                for _ in range(concurrency)
            )
        )
        latencies: list[float] = []
        started = time.perf_counter()
        until = started + duration
        errors = await asyncio.gather(
            *(worker(session, url, body, until, latencies, headers) for _ in range(concurrency))
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
    parser.add_argument("--unique-share", type=float, default=0.0,
                        help="share of requests whose last message is made unique")  # fmt: skip
    parser.add_argument("--header", action="append", default=[], metavar="NAME: VALUE")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    result = asyncio.run(run(args.url, args.body.encode(), args.concurrency, args.duration,
                             args.unique_share, headers))  # fmt: skip
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
