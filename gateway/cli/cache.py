"""`gateway cache stats | clear`: Redis caches are read and cleared directly (no gateway
needs to run); memory caches live in a gateway's process, so they are asked through its
`/admin/cache/*` endpoints (`--url`; the key in GATEWAY_ADMIN_KEY when the policy sets
`auth.admin_key_sha256`). `stats` adds the request log's view (`--db`): lookups by
status, hit rate, cost saved and the measured false-hit rate."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from gateway import stats
from gateway.app import POLICY_ENV
from gateway.cache import namespace_id
from gateway.cache.admin import describe
from gateway.cache.redis_store import RedisStore, connect
from gateway.cache.response_cache import ExactCache
from gateway.cache.store import StoreUnavailable
from gateway.policy.loader import PolicyError, load_policy
from gateway.policy.models import CacheConfig, Policy

T = TypeVar("T")

ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"
URL_ENV = "GATEWAY_URL"
LOG_SQL = """
SELECT model, count(*) FILTER (WHERE cache_status NOT LIKE 'verify%') AS lookups,
       count(*) FILTER (WHERE cache_status IN ('hit', 'semantic_hit')) AS hits,
       count(*) FILTER (WHERE cache_status = 'semantic_hit') AS semantic_hits,
       count(*) FILTER (WHERE cache_status = 'bypass') AS bypassed,
       round(count(*) FILTER (WHERE cache_status IN ('hit', 'semantic_hit'))
             / nullif(count(*) FILTER (WHERE cache_status NOT LIKE 'verify%'), 0), 3) AS hit_rate,
       round(sum(saved_usd), 6) AS saved_usd,
       count(*) FILTER (WHERE cache_status IN ('verify_match', 'verify_mismatch')) AS verified,
       round(count(*) FILTER (WHERE cache_status = 'verify_mismatch')
             / nullif(count(*) FILTER (WHERE cache_status IN ('verify_match', 'verify_mismatch')),
                      0), 4) AS false_hit_rate
FROM requests
WHERE cache_status IS NOT NULL AND started_at >= now()::TIMESTAMP - to_seconds(?)
GROUP BY ALL ORDER BY lookups DESC
"""


def add_commands(commands: Any) -> None:
    cache = commands.add_parser("cache", help="response cache: stats, clear")
    tools = cache.add_subparsers(dest="tool", required=True)
    for name, text in (("stats", "entries, hit rate, savings, false-hit rate"),
                       ("clear", "remove entries (all, or one tenant's)")):  # fmt: skip
        tool = tools.add_parser(name, help=text)
        tool.add_argument("--policy", default=os.environ.get(POLICY_ENV) or None,
                          help=f"the policy the gateway runs (default: ${POLICY_ENV}, else "
                          "the packaged one)")  # fmt: skip
        tool.add_argument("--url", default=os.environ.get(URL_ENV, "http://127.0.0.1:8080"),
                          help=f"a running gateway, for memory caches (default: ${URL_ENV}, "
                          "else http://127.0.0.1:8080)")  # fmt: skip
        tool.add_argument("--cache", help="only this cache (a name under caches:)")
        if name == "clear":
            tool.add_argument("--namespace", help="only this tenant's entries (a key's "
                              "cache_namespace, by default its id)")  # fmt: skip
        else:
            tool.add_argument("--db", type=Path, help="the request log (default: the policy's)")
            tool.add_argument("--since", type=stats.window_seconds, default="24h")


def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy).policy
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    names = [n for n in policy.caches if args.cache in (None, n)]
    if args.cache and not names:
        print(f"unknown cache {args.cache!r}", file=sys.stderr)
        return 2
    if args.tool == "clear":
        return asyncio.run(clear(policy, names, args))
    return asyncio.run(show(policy, names, args))


def admin(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    key = os.environ.get(ADMIN_KEY_ENV)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    response = httpx.request(method, args.url.rstrip("/") + path, json=body, headers=headers,
                             timeout=30)  # fmt: skip
    response.raise_for_status()
    return response.json()


async def clear(policy: Policy, names: list[str], args: argparse.Namespace) -> int:
    failed = 0
    namespace = namespace_id(args.namespace) if args.namespace is not None else None
    for name in names:
        config = policy.caches[name]
        try:
            if config.backend == "redis":
                removed = await on_redis(name, config, lambda c: c.clear(namespace))
            else:
                body = {"cache": name, "namespace": args.namespace}
                removed = admin(args, "POST", "/admin/cache/clear", body)["removed"][name]
            print(f"{name}: removed {removed} entries")
        except (httpx.HTTPError, StoreUnavailable, OSError) as exc:
            failed += 1
            where = "its Redis" if config.backend == "redis" else f"the gateway at {args.url}"
            print(f"{name}: not cleared: {where} did not answer ({exc})", file=sys.stderr)
    return 1 if failed else 0


async def on_redis(name: str, config: CacheConfig, work: Callable[[ExactCache], Awaitable[T]]
                   ) -> T:  # fmt: skip
    """`work` on a Redis cache's store, with a client of its own (clearing and counting
    never embed: the store is the same whatever the cache's type)."""
    assert config.redis_url is not None
    client = connect(config.redis_url, 5.0)
    try:
        return await work(ExactCache(name, config, RedisStore(client, name, 5.0)))
    finally:
        await client.aclose()


async def show(policy: Policy, names: list[str], args: argparse.Namespace) -> int:
    try:
        live = {c["name"]: c for c in admin(args, "GET", "/admin/cache/stats")["caches"]}
    except httpx.HTTPError:
        live = {}
    rows = []
    for name in names:
        config = policy.caches[name]
        found = live.get(name)
        if found is None and config.backend == "redis":
            found = await on_redis(name, config, describe)
        found = found or {"store": f"no gateway at {args.url}"}
        size = found.get("bytes")
        mb = round(size / 2**20, 3) if size is not None else None
        rows.append([name, config.type, config.backend, found.get("entries"), mb,
                     found.get("verified"), found.get("false_hit_rate"),
                     found.get("store")])  # fmt: skip
    print(stats.table(["cache", "type", "backend", "entries", "mb", "verified",
                       "false_hit_rate", "store"], rows))  # fmt: skip
    db = args.db or (Path(policy.telemetry.duckdb) if policy.telemetry.duckdb else None)
    if db is not None and db.exists():
        print()
        print(request_log(db, args.since))
    return 0


def request_log(db: Path, since: int) -> str:
    from gateway.telemetry.duckdb_sink import connect as connect_log

    con = connect_log(db, read_only=True)
    try:
        cursor = con.execute(LOG_SQL, [since])
        header = [d[0] for d in cursor.description or []]
        return stats.table(header, cursor.fetchall())
    finally:
        con.close()
