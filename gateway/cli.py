"""`gateway serve | check | version`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from gateway import __version__, stats
from gateway.app import ACCESS_LOG_ENV, POLICY_ENV, Settings, create_app
from gateway.guardrails import build_guardrail
from gateway.logs import configure_logging
from gateway.policy.loader import PolicyError, load_policy
from gateway.policy.models import (
    LocalProviderConfig,
    PiiGuardrail,
    Policy,
    PromptInjectionGuardrail,
    SecretsGuardrail,
)
from gateway.process import limit_malloc_arenas

log = logging.getLogger("gateway")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible LLM gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--policy", help="policy file or directory (default: the packaged policy)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--no-access-log", action="store_true", help="no per-request log line")
    check = commands.add_parser("check", help="validate a policy file or directory")
    check.add_argument("path")
    commands.add_parser("version", help="print the version")
    stats.add_commands(commands)
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
    models = commands.add_parser("models", help="the built-in local models")
    model_tools = models.add_subparsers(dest="tool", required=True)
    pull = model_tools.add_parser("pull", help="fetch, verify and convert into the model cache")
    pull.add_argument("model", nargs="*", help="model ids (default: all built-in models)")
    model_tools.add_parser("list", help="built-in models and whether they are in the cache")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"llm-gateway {__version__}")
        return 0
    if args.command == "check":
        return check(args.path)
    if args.command in ("stats", "logs"):
        return stats.run(args)
    if args.command == "guardrails":
        return evaluate_guardrails(args)
    if args.command == "models":
        return models_command(args)
    return serve(args)


def models_command(args: argparse.Namespace) -> int:
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


def missing_ner_models(policy: Policy) -> list[str]:
    """spaCy pipelines the PII guardrails name that are not installed."""
    wanted = [(name, g.ner_model) for name, g in policy.guardrails.items()
              if isinstance(g, PiiGuardrail) and g.ner_model]  # fmt: skip
    if not wanted:
        return []
    from gateway.guardrails.pii import ner_model_error

    return [p for name, model in wanted if (p := ner_model_error(name, model)) is not None]


def local_models(policy: Policy) -> list[str]:
    """Built-in models a policy needs: its local providers', and the encoder under the
    prompt-injection guardrail."""
    models = [p.model for p in policy.providers.values() if isinstance(p, LocalProviderConfig)]
    if any(g.type == "prompt_injection" for g in policy.guardrails.values()):
        models.append("all-minilm-l6-v2")
    return models


def check(path: str) -> int:
    try:
        loaded = load_policy(path)
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    policy = loaded.policy
    problems = missing_ner_models(policy)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: ok ({len(policy.providers)} providers, {len(policy.models)} models)")
    return 0


def evaluate_guardrails(args: argparse.Namespace) -> int:
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


def serve(args: argparse.Namespace) -> int:
    limit_malloc_arenas()  # before any thread: see gateway/process.py
    listener = configure_logging(args.log_level)
    try:
        return run_server(args)
    finally:
        listener.stop()


def run_server(args: argparse.Namespace) -> int:
    try:
        loaded = load_policy(args.policy)
    except PolicyError as exc:
        for issue in exc.issues:
            log.error("invalid policy: %s", issue)
        return 1
    if not loaded.policy.may_bind(args.host):
        log.error(
            "refusing to bind %s: no gateway API keys are configured; add auth.keys to the "
            "policy or set auth.allow_unauthenticated_remote: true",
            args.host,
        )
        return 2
    for problem in missing_ner_models(loaded.policy):
        log.error("%s", problem)
        return 1
    from gateway.local.registry import ModelError, pull_for_policy

    try:  # before any worker starts, so that workers never race to fetch
        pull_for_policy(local_models(loaded.policy), lambda message: log.info("%s", message))
    except ModelError as exc:
        log.error("local model: %s", exc)
        return 1
    common = {
        "host": args.host,
        "port": args.port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 30,
        "http": "gateway.server:GatewayHttpProtocol",  # timeouts, connection limit, HTTP/1.0
        "proxy_headers": False,  # nothing reads the client's address; saves a layer a request
    }
    if args.workers > 1:
        if args.policy:
            os.environ[POLICY_ENV] = os.path.abspath(args.policy)
        os.environ[ACCESS_LOG_ENV] = "0" if args.no_access_log else "1"
        uvicorn.run("gateway.app:create_app", factory=True, workers=args.workers, **common)
    else:
        settings = Settings(
            policy_path=args.policy, preloaded=loaded, access_log=not args.no_access_log
        )
        app = create_app(settings)
        uvicorn.run(app, **common)
    return 0
