"""`gateway guardrails eval`: scores per scanner on a labelled dataset."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from gateway import stats
from gateway.guardrails import build_guardrail
from gateway.policy.loader import load_policy
from gateway.policy.models import PiiGuardrail, PromptInjectionGuardrail, SecretsGuardrail


def add_commands(commands: Any) -> None:
    guardrails = commands.add_parser("guardrails", help="guardrail tools")
    tools = guardrails.add_subparsers(dest="tool", required=True)
    evaluate = tools.add_parser("eval", help="precision, recall, F1, FPR and latency per scanner")
    evaluate.add_argument("dataset", type=Path)
    evaluate.add_argument(
        "--policy",
        help="where the guardrails come from (default: pii, secrets and injection "
        "(prompt_injection), each with its default settings)",
    )
    evaluate.add_argument("--guardrail", action="append", help="only these (repeatable)")


def run(args: argparse.Namespace) -> int:
    from gateway.guardrails.evaluate import HEADER, DatasetError, evaluate, load

    if args.policy:
        configs = dict(load_policy(args.policy).policy.guardrails)
    else:
        configs = {
            "pii": PiiGuardrail(type="pii"),
            "secrets": SecretsGuardrail(type="secrets"),
            "injection": PromptInjectionGuardrail(type="prompt_injection"),
        }
    names = args.guardrail or list(configs)
    unknown = [n for n in names if n not in configs]
    if unknown:
        print(f"unknown guardrail(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        rows = load(args.dataset)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table_rows = [asyncio.run(evaluate(build_guardrail(n, configs[n]), rows)).row(n) for n in names]
    print(stats.table(HEADER, table_rows))
    return 0
