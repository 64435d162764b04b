"""`gateway prompts list | show | render | diff | lock`: the prompt registry of a policy
directory (`--policy`, default $GATEWAY_POLICY), read as the gateway reads it."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.app import POLICY_ENV
from gateway.cli.check import load_or_report
from gateway.errors import GatewayError
from gateway.policy.loader import LoadedPolicy
from gateway.prompts.lock import LOCK_NAME, content_hash
from gateway.prompts.render import CompiledVersion
from gateway.prompts.stage import Choice, build_body, build_experiments, choose


def add_commands(commands: Any) -> None:
    prompts = commands.add_parser("prompts", help="prompt registry: list, show, render, diff, lock")
    tools = prompts.add_subparsers(dest="tool", required=True)
    policy_help = f"the policy file or directory (default: ${POLICY_ENV})"
    tool = tools.add_parser("list", help="every prompt: versions, labels, experiments")
    tool.add_argument("--policy", default=os.environ.get(POLICY_ENV), help=policy_help)
    tool = tools.add_parser("show", help="a prompt, or one version (NAME@REF)")
    tool.add_argument("ref", metavar="NAME[@REF]")
    tool.add_argument("--policy", default=os.environ.get(POLICY_ENV), help=policy_help)
    tool = tools.add_parser("render", help="what a version sends upstream, with variables")
    tool.add_argument("ref", metavar="NAME@REF")
    tool.add_argument("--vars", default="{}", help="the variables, a JSON object")
    tool.add_argument("--user", help="the unit an experiment assigns (@experiment)")
    tool.add_argument("--policy", default=os.environ.get(POLICY_ENV), help=policy_help)
    tool = tools.add_parser("diff", help="two versions, as a unified diff")
    tool.add_argument("a", metavar="NAME@A")
    tool.add_argument("b", metavar="NAME@B")
    tool.add_argument("--policy", default=os.environ.get(POLICY_ENV), help=policy_help)
    tool = tools.add_parser("lock", help=f"add new versions to prompts/{LOCK_NAME}")
    tool.add_argument("policy", nargs="?", default=os.environ.get(POLICY_ENV) or "policies",
                      metavar="POLICY_DIR",
                      help=f"default: ${POLICY_ENV}, else ./policies")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not args.policy:
        print(f"name the policy directory (--policy or ${POLICY_ENV})", file=sys.stderr)
        return 2
    loaded = load_or_report(args.policy)
    if loaded is None:
        return 1
    try:
        return TOOLS[args.tool](loaded, args)
    except GatewayError as exc:
        print(exc.message, file=sys.stderr)
        return 1


def list_prompts(loaded: LoadedPolicy, args: argparse.Namespace) -> int:
    registry, experiments = loaded.prompts, loaded.policy.experiments
    if not registry.prompts:
        print(f"no prompts in {registry.folder}")
    for name, prompt in sorted(registry.prompts.items()):
        versions = ", ".join(str(v.version) for v in prompt.versions)
        labels = ", ".join(f"{k}={v}" for k, v in prompt.labels.items()) or "-"
        running = ", ".join(e for e, c in experiments.items() if c.prompt == name) or "-"
        print(f"{name}: versions {versions}; labels {labels}; experiments {running}")
    return 0


def resolve(loaded: LoadedPolicy, ref: str, user: str | None = None) -> Choice:
    registry = loaded.prompts
    name, _, label = ref.removeprefix("prompt:").partition("@")
    prompt = registry.prompts.get(name)
    if prompt is None:
        raise GatewayError(f"no prompt {name!r} (prompts: {', '.join(registry.prompts) or 'none'})")
    experiments = build_experiments(registry, loaded.policy, {})
    return choose(registry, experiments, prompt, label, {"user": user} if user else {}, {})


def document(version: CompiledVersion) -> dict[str, Any]:
    return version.config.model_dump(mode="json", exclude_none=True)


def show(loaded: LoadedPolicy, args: argparse.Namespace) -> int:
    if "@" not in args.ref:
        name = args.ref.removeprefix("prompt:")
        prompt = loaded.prompts.prompts.get(name)
        if prompt is None:
            raise GatewayError(f"no prompt {name!r}")
        locked = loaded.prompts.lock.get(name, {})
        print(f"{name}: labels {prompt.labels or '{}'}")
        for version in prompt.versions:
            state = "locked" if version.version in locked else "not locked yet"
            print(f"  version {version.version}: model {version.model}, "
                  f"{len(version.messages)} messages, {state}")  # fmt: skip
        return 0
    chosen = resolve(loaded, args.ref).version
    doc = document(chosen)
    print(f"# {chosen.ref}  {content_hash(doc)}")
    print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), end="")
    return 0


def render(loaded: LoadedPolicy, args: argparse.Namespace) -> int:
    try:
        variables = orjson.loads(args.vars)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(f"--vars is not JSON: {exc}") from None
    if not isinstance(variables, dict):
        raise GatewayError("--vars must be a JSON object")
    choice = resolve(loaded, args.ref, args.user)
    prompt = loaded.prompts.prompts[choice.version.prompt]
    body = build_body(choice.version, prompt, {}, choice.version.render(variables))
    if choice.experiment:
        print(f"# experiment {choice.experiment}: arm {choice.arm}", file=sys.stderr)
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    return 0


def diff(loaded: LoadedPolicy, args: argparse.Namespace) -> int:
    texts = []
    for ref in (args.a, args.b):
        version = resolve(loaded, ref).version
        text = yaml.safe_dump(document(version), sort_keys=False, allow_unicode=True, width=1000)
        texts.append((version.ref, text.splitlines(keepends=True)))
    (a, old), (b, new) = texts
    sys.stdout.writelines(difflib.unified_diff(old, new, fromfile=a, tofile=b))
    return 0


def lock(loaded: LoadedPolicy, args: argparse.Namespace) -> int:
    registry = loaded.prompts
    added = {name: sorted(versions) for name, versions in registry.unlocked.items()}
    if not registry.save_lock():
        print(f"could not write {registry.folder}/{LOCK_NAME}", file=sys.stderr)
        return 1
    for name, versions in sorted(added.items()):
        print(f"locked {name} version(s) {', '.join(map(str, versions))}")
    total = sum(len(v) for v in registry.lock.values())
    print(f"{Path(str(registry.folder)) / LOCK_NAME}: {total} versions locked")
    return 0


TOOLS = {"list": list_prompts, "show": show, "render": render, "diff": diff, "lock": lock}
