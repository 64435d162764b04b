"""YAML with the file and line of every key path, and policy problems reported as
`file:line: key.path: message` (policy files and prompt files alike)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


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


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Located:
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


def index_lines(node: yaml.Node, path: KeyPath, file: str, out: Located) -> None:
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
            index_lines(value_node, child, file, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value_node in enumerate(node.value):
            index_lines(value_node, (*path, i), file, out)


def parse_yaml(name: str, text: str, out: Located) -> Any:
    """One YAML document, its key paths' lines recorded in `out` ({} when empty)."""
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
        index_lines(node, (), name, out)
    return doc


def _without_union_tag(loc: KeyPath) -> KeyPath:
    """`guardrails.pii.secrets.x` -> `guardrails.pii.x`: pydantic puts the `type` in the path."""
    if len(loc) > 2 and loc[0] in ("guardrails", "providers"):
        return (*loc[:2], *loc[3:])
    return loc


def error_path(err: Mapping[str, Any]) -> KeyPath:
    loc = _without_union_tag(tuple(err["loc"]))
    return (*loc, "type") if err["type"] == "union_tag_invalid" else loc


def pydantic_message(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "union_tag_invalid":
        return f"Input should be one of {err['ctx']['expected_tags']}"
    message = str(err["msg"])
    return message.removeprefix("Value error, ")
