"""Load policy YAML (one file or a directory), interpolate ${ENV}, validate, and report
every problem as `file:line: key.path: message`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.policy.checks import cross_reference_errors
from gateway.policy.located import (
    KeyPath,
    Located,
    PolicyError,
    PolicyIssue,
    error_path,
    format_path,
    parse_yaml,
    pydantic_message,
)
from gateway.policy.models import Policy
from gateway.prompts.registry import (
    PromptRegistry,
    experiment_errors,
    load_prompts,
    prompt_errors,
    prompts_folder,
)

__all__ = ["LoadedPolicy", "PolicyError", "PolicyIssue", "load_policy", "parse_texts"]
MERGED_SECTIONS = ("providers", "models")
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_POLICY_NAME = "<packaged default policy>"


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: str
    files: tuple[Path, ...]
    prompts: PromptRegistry = field(default_factory=PromptRegistry)


def _interpolate(value: Any, path: KeyPath, env: Mapping[str, str], out: Located) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), env, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), env, out) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        out.issue(path, f"environment variable {name} is not set")
        return ""

    return _ENV.sub(substitute, value)


ENV_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")


def _literal_secrets(out: Located) -> None:
    """Provider keys come from the environment only: a literal in the file would end up in
    version control, images and config maps."""
    providers = out.data.get("providers")
    for name, config in (providers or {}).items() if isinstance(providers, dict) else ():
        key = config.get("api_key") if isinstance(config, dict) else None
        if isinstance(key, str) and key and not ENV_REFERENCE.search(key):
            out.issue(("providers", name, "api_key"),
                      f"a literal secret: write `api_key: ${{{env_name(name)}}}` and set "
                      f"{env_name(name)} in the environment")  # fmt: skip


def env_name(provider: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", provider.upper()).strip("_") + "_API_KEY"


def _merge(file: str, doc: Any, out: Located) -> None:
    if not isinstance(doc, dict):
        out.issues.append(PolicyIssue(file, 1, "", "a policy file must be a YAML mapping"))
        return
    for key, value in doc.items():
        if key in MERGED_SECTIONS and isinstance(value, dict):
            section = out.data.setdefault(key, {})
            for name, item in value.items():
                if name in section:
                    out.issue((key, name), f"defined again in {file}")
                section[name] = item
        elif key in out.data and not (key == "version" and out.data[key] == value):
            out.issue((key,), f"defined again in {file}")
        else:
            out.data[key] = value


def _policy_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise PolicyError([PolicyIssue(str(path), None, "", "no *.yaml policy files here")])
        return files
    if not path.exists():
        raise PolicyError([PolicyIssue(str(path), None, "", "no such file or directory")])
    return [path]


CrossCheck = Callable[[Policy], list[tuple[KeyPath, str]]]


def parse_texts(texts: list[tuple[str, str]], env: Mapping[str, str] | None = None,
                extra: CrossCheck | None = None) -> Policy:  # fmt: skip
    """Validate policy documents given as (file name, YAML text) pairs; `extra` adds
    checks against what lives outside them (the prompt files)."""
    out = Located()
    for name, text in texts:
        _merge(name, parse_yaml(name, text, out), out)
    _literal_secrets(out)
    data = _interpolate(out.data, (), os.environ if env is None else env, out)
    reported = {issue.path for issue in out.issues}  # each key path once, in one pass
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = error_path(err)
            if format_path(path) not in reported:
                out.issue(path, pydantic_message(err))
        raise PolicyError(out.issues) from None
    for path, message in cross_reference_errors(policy) + (extra(policy) if extra else []):
        out.issue(path, message)
    if out.issues:
        raise PolicyError(out.issues)
    return policy


def load_policy(path: str | Path | None, env: Mapping[str, str] | None = None,
                lock: bool = False) -> LoadedPolicy:  # fmt: skip
    """Load a policy file or directory and its prompt files; with no path, the default
    policy in the package. `lock`: add prompt versions seen for the first time to
    `prompts.lock` (serving does; `gateway check` only checks)."""
    if path is None:
        text = resources.files("gateway.policy").joinpath("default.yaml").read_text("utf-8")
        return LoadedPolicy(
            parse_texts([(DEFAULT_POLICY_NAME, text)], env), DEFAULT_POLICY_NAME, ()
        )
    files = _policy_files(Path(path))
    texts = [(str(f), f.read_text("utf-8")) for f in files]
    prompts, issues = load_prompts(prompts_folder(Path(path)))
    try:
        policy = parse_texts(texts, env, lambda p: experiment_errors(prompts, p))
    except PolicyError as exc:
        raise PolicyError(exc.issues + issues) from None
    issues += prompt_errors(prompts, policy)
    if issues:
        raise PolicyError(issues)
    if lock:
        prompts.save_lock()
    return LoadedPolicy(policy, str(path), tuple(files), prompts)
