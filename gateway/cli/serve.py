"""`gateway serve`: the gateway on uvicorn, one process or several workers."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import uvicorn

from gateway.app import ACCESS_LOG_ENV, POLICY_ENV, Settings, create_app
from gateway.cli.check import local_models, missing_ner_models
from gateway.logs import configure_logging
from gateway.policy.loader import PolicyError, load_policy
from gateway.process import limit_malloc_arenas

log = logging.getLogger("gateway")


def add_commands(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--policy", help="policy file or directory (default: the packaged policy)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--no-access-log", action="store_true", help="no per-request log line")


def run(args: argparse.Namespace) -> int:
    limit_malloc_arenas()  # before any thread: see gateway/process.py
    listener = configure_logging(args.log_level)
    try:
        return run_server(args)
    finally:
        listener.stop()


def run_server(args: argparse.Namespace) -> int:
    try:
        loaded = load_policy(args.policy, lock=True)
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
