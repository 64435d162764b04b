"""`gateway routes --url URL`: a running gateway's routing table (GET /v1/gateway/routes)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx

from gateway import stats

KEY_ENV = "GATEWAY_API_KEY"


def add_commands(commands: Any) -> None:
    routes = commands.add_parser("routes", help="each model's targets: latency, load, breakers")
    routes.add_argument("--url", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080"),
                        help="a running gateway (default: $GATEWAY_URL, else "
                        "http://127.0.0.1:8080); its key in $GATEWAY_API_KEY")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    key = os.environ.get(KEY_ENV)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(args.url.rstrip("/") + "/v1/gateway/routes", headers=headers,
                             timeout=10)  # fmt: skip
        response.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"error: {args.url}: {exc}", file=sys.stderr)
        return 1
    rows = [
        [m["model"], m["strategy"], t["provider"], t["upstream_model"], t["weight"],
         t["ewma_ms"], t["in_flight"], t["error_ratio"], t["breaker"], t["requests"]]
        for m in response.json()["models"] for t in m["targets"]
    ]  # fmt: skip
    print(stats.table(["model", "strategy", "provider", "upstream_model", "weight", "ewma_ms",
                       "in_flight", "error_ratio", "breaker", "requests"], rows))  # fmt: skip
    return 0
