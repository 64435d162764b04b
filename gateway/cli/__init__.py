"""The `gateway` command: the parser assembled here, one module per command group."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gateway import __version__, stats
from gateway.cli import (
    cache,
    check,
    experiments,
    guardrails,
    keys,
    models,
    prompts,
    routes,
    serve,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible LLM gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_commands(commands)
    check.add_commands(commands)
    commands.add_parser("version", help="print the version")
    stats.add_commands(commands)
    guardrails.add_commands(commands)
    models.add_commands(commands)
    cache.add_commands(commands)
    routes.add_commands(commands)
    prompts.add_commands(commands)
    experiments.add_commands(commands)
    keys.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"llm-gateway {__version__}")
        return 0
    if args.command == "check":
        return check.run(args.path)
    if args.command in ("stats", "logs"):
        return stats.run(args)
    if args.command == "guardrails":
        return guardrails.run(args)
    if args.command == "models":
        return models.run(args)
    if args.command == "cache":
        return cache.run(args)
    if args.command == "routes":
        return routes.run(args)
    if args.command == "prompts":
        return prompts.run(args)
    if args.command == "experiments":
        return experiments.run(args)
    if args.command == "keys":
        return keys.run(args)
    return serve.run(args)
