"""`gateway models pull | list`: the built-in local models."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_commands(commands: Any) -> None:
    models = commands.add_parser("models", help="the built-in local models")
    model_tools = models.add_subparsers(dest="tool", required=True)
    pull = model_tools.add_parser("pull", help="fetch, verify and convert into the model cache")
    pull.add_argument("model", nargs="*", help="model ids (default: all built-in models)")
    model_tools.add_parser("list", help="built-in models and whether they are in the cache")


def run(args: argparse.Namespace) -> int:
    from gateway.local.registry import KNOWN, ModelError, is_ready, model_path, pull

    if args.tool == "list":
        for model in KNOWN.values():
            state = "ready" if is_ready(model.id) else "not pulled"
            print(f"{model.id:24} {model.kind:11} {state:11} {model_path(model.id)}")
        return 0
    try:
        for model in args.model or list(KNOWN):
            pull(model, progress=lambda message: print(message, file=sys.stderr))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
