"""`gateway stats` and `gateway logs`: the request log as tables in the terminal.

Read-only and parameterised: the window and filters are bound as parameters, and the
grouping column comes from a fixed list. The gateway opens the file only while it
flushes, so these commands work while it runs.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.telemetry.duckdb_sink import connect

GROUPS = {"model": "model", "provider": "provider", "key": "key_id", "status": "status",
          "upstream_model": "upstream_model", "operation": "operation",
          "prompt_version": "prompt_version", "end_user": "end_user", "team": "team"}  # fmt: skip
WINDOW = re.compile(r"^(\d+)([smhd])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

STATS_SQL = """
SELECT {group} AS "{label}", count(*) AS requests,
       count(*) FILTER (WHERE status >= 400) AS errors,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       round(sum(cost_usd), 6) AS cost_usd,
       round(count(*) FILTER (WHERE cache_status IN ('hit', 'semantic_hit'))
             / nullif(count(cache_status), 0), 3) AS cache_hit_rate,
       round(sum(saved_usd), 6) AS saved_usd,
       round(quantile_cont(latency_ms, 0.5), 2) AS p50_ms,
       round(quantile_cont(latency_ms, 0.95), 2) AS p95_ms,
       round(quantile_cont(latency_ms, 0.99), 2) AS p99_ms,
       round(quantile_cont(ttfb_ms, 0.5) FILTER (WHERE stream), 2) AS ttft_p50_ms
FROM requests
WHERE started_at >= now()::TIMESTAMP - to_seconds(?)
GROUP BY ALL ORDER BY requests DESC
"""
LOGS_SQL = """
SELECT strftime(started_at, '%Y-%m-%d %H:%M:%S') AS time, request_id, model, provider,
       status, round(latency_ms, 1) AS latency_ms, input_tokens AS "in", output_tokens AS "out",
       coalesce(error_type, '') AS error
FROM requests
WHERE started_at >= now()::TIMESTAMP - to_seconds(?)
  AND (? IS NULL OR model = ?) AND (? IS NULL OR status = ?)
ORDER BY started_at DESC LIMIT ?
"""


def window_seconds(text: str) -> int:
    match = WINDOW.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"window must look like 15m, 24h or 7d (got {text!r})")
    return int(match.group(1)) * SECONDS[match.group(2)]


def add_commands(commands: Any) -> None:
    stats = commands.add_parser("stats", help="request log summary")
    stats.add_argument("--db", required=True, type=Path, help="the request log (telemetry.duckdb)")
    stats.add_argument("--since", type=window_seconds, default="24h", help="window, e.g. 1h, 7d")
    stats.add_argument("--by", choices=sorted(GROUPS), default="model")
    stats.add_argument("--policy", help="with --by key|team: add the policy's budgets beside "
                       "the spend (API keys' live usage: GET /admin/usage)")  # fmt: skip
    logs = commands.add_parser("logs", help="recent requests")
    logs.add_argument("--db", required=True, type=Path)
    logs.add_argument("--since", type=window_seconds, default="24h")
    logs.add_argument("--model")
    logs.add_argument("--status", type=int)
    logs.add_argument("--limit", type=int, default=20)


def run(args: argparse.Namespace) -> int:
    if not args.db.exists():
        print(f"{args.db}: no request log yet", flush=True)
        return 1
    con = connect(args.db, read_only=True)
    try:
        if args.command == "stats":
            sql = STATS_SQL.format(group=GROUPS[args.by], label=args.by)
            cursor = con.execute(sql, [args.since])
        else:
            params = [args.since, args.model, args.model, args.status, args.status, args.limit]
            cursor = con.execute(LOGS_SQL, params)
        header = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall()
        if args.command == "stats" and args.policy and args.by in ("key", "team"):
            budgets = policy_budgets(args.policy, args.by)
            header, rows = [*header, "budgets"], [(*r, budgets.get(str(r[0]), "")) for r in rows]
        print(table(header, rows))
    finally:
        con.close()
    return 0


def policy_budgets(path: str, by: str) -> dict[str, str]:
    """Each key's (or team's) budgets as `$500/month`, from the policy."""
    from gateway.policy.loader import load_policy

    policy = load_policy(path).policy
    owners: dict[str, Any] = ({k.id: k.budgets or policy.keys_defaults.budgets
                               for k in policy.auth.keys} if by == "key" else
                              {name: t.budgets for name, t in policy.teams.items()})  # fmt: skip
    return {owner: ", ".join(f"${b.usd}/{b.period}" + (f" ({b.model})" if b.model else "")
                             for b in budgets) for owner, budgets in owners.items()}  # fmt: skip


def cell(value: Any) -> str:
    """Numbers as people write them: floats to at most 3 decimals (a FLOAT column holds
    151.44 as 151.44000244140625), Decimals without trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.001:
            return f"{value:.3g}"
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text if text != "-0" else "0"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(header)] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
