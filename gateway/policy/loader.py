"""Load policy YAML (one file or a directory), interpolate ${ENV}, validate, and report
every problem as `file:line: key.path: message`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.policy.models import Policy, cross_reference_errors

KeyPath = tuple[str | int, ...]
MERGED_SECTIONS = ("providers", "models")
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_POLICY_NAME = "<packaged default policy>"


@dataclass(frozen=True)
class PolicyIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(Exception):
    def __init__(self, issues: list[PolicyIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    source: str
    files: tuple[Path, ...]


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Located:
    """Data parsed from YAML together with the file and line of every key path."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.lines: dict[KeyPath, tuple[str, int]] = {}
        self.issues: list[PolicyIssue] = []

    def where(self, path: KeyPath) -> tuple[str, int | None]:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return (next(iter(self.lines.values()), ("<policy>", 0))[0], None)

    def issue(self, path: KeyPath, message: str) -> None:
        file, line = self.where(path)
        self.issues.append(PolicyIssue(file, line, format_path(path), message))


def _index(node: yaml.Node, path: KeyPath, file: str, out: _Located) -> None:
    """Record the line of every key path and report duplicate keys (YAML keeps the last)."""
    out.lines.setdefault(path, (file, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                out.issues.append(PolicyIssue(file, line, format_path(child), "duplicate key"))
            seen.add(key)
            out.lines[child] = (file, line)
            _index(value_node, child, file, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value_node in enumerate(node.value):
            _index(value_node, (*path, i), file, out)


def _interpolate(value: Any, path: KeyPath, env: Mapping[str, str], out: _Located) -> Any:
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


def _literal_secrets(out: _Located) -> None:
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


def _merge(file: str, doc: Any, out: _Located) -> None:
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


def parse_texts(texts: list[tuple[str, str]], env: Mapping[str, str] | None = None) -> Policy:
    """Validate policy documents given as (file name, YAML text) pairs."""
    out = _Located()
    for name, text in texts:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            doc = loader.construct_document(node) if node is not None else {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyError([PolicyIssue(name, line, "", f"invalid YAML: {problem}")]) from None
        finally:
            loader.dispose()
        if node is not None:
            _index(node, (), name, out)
        _merge(name, doc, out)
    _literal_secrets(out)
    data = _interpolate(out.data, (), os.environ if env is None else env, out)
    reported = {issue.path for issue in out.issues}  # each key path once, in one pass
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = _error_path(err)
            if format_path(path) not in reported:
                out.issue(path, _pydantic_message(err))
        raise PolicyError(out.issues) from None
    for path, message in cross_reference_errors(policy):
        out.issue(path, message)
    if out.issues:
        raise PolicyError(out.issues)
    return policy


def _without_union_tag(loc: KeyPath) -> KeyPath:
    """`guardrails.pii.secrets.x` -> `guardrails.pii.x`: pydantic puts the `type` in the path."""
    if len(loc) > 2 and loc[0] in ("guardrails", "providers"):
        return (*loc[:2], *loc[3:])
    return loc


def _error_path(err: Mapping[str, Any]) -> KeyPath:
    loc = _without_union_tag(tuple(err["loc"]))
    return (*loc, "type") if err["type"] == "union_tag_invalid" else loc


def _pydantic_message(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "union_tag_invalid":
        return f"Input should be one of {err['ctx']['expected_tags']}"
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def load_policy(path: str | Path | None, env: Mapping[str, str] | None = None) -> LoadedPolicy:
    """Load a policy file or directory; with no path, the default policy in the package."""
    if path is None:
        text = resources.files("gateway.policy").joinpath("default.yaml").read_text("utf-8")
        return LoadedPolicy(
            parse_texts([(DEFAULT_POLICY_NAME, text)], env), DEFAULT_POLICY_NAME, ()
        )
    files = _policy_files(Path(path))
    texts = [(str(f), f.read_text("utf-8")) for f in files]
    return LoadedPolicy(parse_texts(texts, env), str(path), tuple(files))
