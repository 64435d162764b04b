"""`gateway experiments list | report NAME`: an experiment's arms compared on its
feedback metric, from the request log (`--db`, default the policy's telemetry.duckdb)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import duckdb

from gateway.app import POLICY_ENV
from gateway.cli.check import load_or_report
from gateway.experiments import data, formats, report
from gateway.prompts.registry import arm_version

FORMATS = {"table": formats.table, "markdown": formats.markdown, "json": formats.as_json}


def add_commands(commands: Any) -> None:
    experiments = commands.add_parser("experiments", help="prompt experiments: list, report")
    tools = experiments.add_subparsers(dest="tool", required=True)
    policy_help = f"the policy file or directory (default: ${POLICY_ENV})"
    tool = tools.add_parser("list", help="the policy's experiments")
    tool.add_argument("--policy", default=os.environ.get(POLICY_ENV), help=policy_help)
    tool = tools.add_parser("report", help="per arm: metric, interval, lift, p-value, cost")
    tool.add_argument("name")
    tool.add_argument("--policy", default=os.environ.get(POLICY_ENV), help=policy_help)
    tool.add_argument("--db", type=Path, help="the request log (default: the policy's)")
    tool.add_argument("--format", choices=sorted(FORMATS), default="table")
    tool.add_argument("--test", choices=["sequential", "fixed"], default="sequential",
                      help="sequential (mSPRT, valid at every look; the default) or fixed (z, "
                      "Fisher, Welch, chi-square: one look at the planned size)")  # fmt: skip
    tool.add_argument("--plot", type=Path, metavar="OUT.png", help="the metric per arm over time")


def run(args: argparse.Namespace) -> int:
    if not args.policy:
        print(f"name the policy (--policy or ${POLICY_ENV})", file=sys.stderr)
        return 2
    loaded = load_or_report(args.policy)
    if loaded is None:
        return 1
    policy = loaded.policy
    if args.tool == "list":
        for name, each in policy.experiments.items():
            arms = ", ".join(f"{arm} ({share:.0%})" for arm, share in each.shares.items())
            print(f"{name}: prompt {each.prompt}, arms {arms}, metric {each.metric}, "
                  f"{each.allocation}")  # fmt: skip
        return 0
    config = policy.experiments.get(args.name)
    if config is None:
        known = ", ".join(policy.experiments) or "none"
        print(f"no experiment {args.name!r} (experiments: {known})", file=sys.stderr)
        return 1
    db = args.db or (Path(policy.telemetry.duckdb) if policy.telemetry.duckdb else None)
    if db is None or not db.exists():
        print(f"no request log at {db} (--db, or the policy's telemetry.duckdb)", file=sys.stderr)
        return 1
    try:
        found = data.read(db, args.name, config.metric, list(config.arms))
    except duckdb.Error as exc:
        print(f"cannot read {db}: {exc}", file=sys.stderr)
        return 1
    versions = {arm: v.config.version for arm in config.arms
                if (v := arm_version(loaded.prompts, config.prompt, arm)) is not None}  # fmt: skip
    metric = policy.feedback.metrics[config.metric]
    result = report.build(args.name, config, config.metric, metric, found, args.test, versions)
    print(FORMATS[args.format](result))
    if args.plot is not None:
        return plot(found, metric.type, args, result)
    return 0


def plot(found: data.ExperimentData, kind: str, args: argparse.Namespace,
         result: dict[str, Any]) -> int:  # fmt: skip
    if kind == "category":
        print("--plot draws boolean and float metrics", file=sys.stderr)
        return 1
    if importlib.util.find_spec("matplotlib") is None:
        print("--plot needs matplotlib: pip install 'llm-gateway[report]'", file=sys.stderr)
        return 1
    from gateway.experiments.plot import plot as draw

    draw(found, kind, f"{result['experiment']}: {result['metric']} per arm", args.plot)
    print(f"wrote {args.plot}", file=sys.stderr)
    return 0
