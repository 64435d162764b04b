"""The `gateway` command: the parser assembled here, one module per command group."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

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


RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": lambda args: check.run(args.path),
    "stats": stats.run, "logs": stats.run, "guardrails": guardrails.run, "models": models.run,
    "cache": cache.run, "routes": routes.run, "prompts": prompts.run,
    "experiments": experiments.run, "keys": keys.run, "serve": serve.run,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"llm-gateway {__version__}")
        return 0
    return RUNNERS[args.command](args)
