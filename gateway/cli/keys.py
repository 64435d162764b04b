"""`gateway keys create | list | show | revoke`: the admin API of a running gateway
(`--url`, default $GATEWAY_URL or http://127.0.0.1:8080), with the admin key from
$GATEWAY_ADMIN_KEY. `create` prints the new key's record and its secret (shown once)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx
import orjson

ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"
URL_ENV = "GATEWAY_URL"


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="gateway keys through the admin API")
    tools = keys.add_subparsers(dest="tool", required=True)
    for name, text in (("create", "make a key (its secret is printed once)"),
                       ("list", "every key, the policy's and the API's"),
                       ("show", "one key"), ("revoke", "revoke a key")):  # fmt: skip
        tool = tools.add_parser(name, help=text)
        tool.add_argument("--url", default=os.environ.get(URL_ENV, "http://127.0.0.1:8080"))
        if name in ("show", "revoke"):
            tool.add_argument("id")
    create = tools.choices["create"]
    create.add_argument("--id", help="default: key-<random>")
    create.add_argument("--team")
    create.add_argument("--models", help="comma-separated names or globs (default: all)")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--concurrent", type=int)
    create.add_argument("--budget", action="append", default=[], metavar="USD/PERIOD",
                        help="e.g. 50/month (day, week, month); repeatable")  # fmt: skip
    create.add_argument("--expires-at", help="ISO 8601, e.g. 2027-01-31T00:00:00Z")
    create.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")


def body(args: argparse.Namespace) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if args.id:
        doc["id"] = args.id
    if args.team:
        doc["team"] = args.team
    if args.models:
        doc["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    limits = {k: getattr(args, k) for k in ("rpm", "tpm", "concurrent") if getattr(args, k)}
    if limits:
        doc["limits"] = limits
    budgets = []
    for spec in args.budget:
        usd, _, period = spec.partition("/")
        budgets.append({"usd": usd, "period": period or "month"})
    if budgets:
        doc["budgets"] = budgets
    if args.expires_at:
        doc["expires_at"] = args.expires_at
    if args.metadata:
        doc["metadata"] = dict(item.partition("=")[::2] for item in args.metadata)
    return doc


def run(args: argparse.Namespace) -> int:
    key = os.environ.get(ADMIN_KEY_ENV)
    if not key:
        print(f"set {ADMIN_KEY_ENV} to the gateway's admin key", file=sys.stderr)
        return 2
    headers = {"authorization": f"Bearer {key}"}
    base = args.url.rstrip("/") + "/admin/keys"
    calls = {
        "create": lambda c: c.post(base, json=body(args)),
        "list": lambda c: c.get(base),
        "show": lambda c: c.get(f"{base}/{args.id}"),
        "revoke": lambda c: c.delete(f"{base}/{args.id}"),
    }
    try:
        with httpx.Client(headers=headers, timeout=10) as client:
            response = calls[args.tool](client)
    except httpx.HTTPError as exc:
        print(f"{args.url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"{response.status_code}: {response.text}", file=sys.stderr)
        return 1
    doc = response.json()
    if args.tool == "list":
        for k in doc["data"]:
            state = "revoked" if k.get("revoked_at") else "active"
            print(f"{k['id']}\t{k['source']}\t{k.get('team') or '-'}\t{state}")
        return 0
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    return 0
