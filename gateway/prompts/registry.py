"""The prompt files of a policy directory (`prompts/*.yaml`), validated, compiled and
checked against `prompts.lock`, and the references requests make to them
(`NAME@3`, `NAME@production`, `NAME@latest`, `NAME@experiment`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.policy.located import (
    KeyPath,
    Located,
    PolicyError,
    PolicyIssue,
    format_path,
    parse_yaml,
    pydantic_message,
)
from gateway.policy.models import Policy
from gateway.prompts.config import PromptFile
from gateway.prompts.lock import LOCK_NAME, Lock, content_hash, read_lock, write_lock
from gateway.prompts.render import CompiledVersion, PromptDefinitionError, compile_version

log = logging.getLogger("gateway.prompts")
PROMPTS_DIR = "prompts"


@dataclass
class PromptRegistry:
    prompts: dict[str, PromptFile] = field(default_factory=dict)
    compiled: dict[tuple[str, int], CompiledVersion] = field(default_factory=dict)
    located: dict[str, Located] = field(default_factory=dict)  # prompt name -> its file's lines
    folder: Path | None = None
    lock: Lock = field(default_factory=dict)
    unlocked: Lock = field(default_factory=dict)  # versions not in the lock file yet

    def issue(self, prompt: str, path: KeyPath, message: str) -> PolicyIssue:
        file, line = self.located[prompt].where(path)
        return PolicyIssue(file, line, format_path(path), message)

    def version(self, prompt: str, number: int) -> CompiledVersion | None:
        return self.compiled.get((prompt, number))

    def label_target(self, prompt: str, label: str) -> int | str | None:
        """A label's version number, or the experiment it names (None: no such label)."""
        found = self.prompts.get(prompt)
        return found.labels.get(label) if found is not None else None

    def save_lock(self) -> bool:
        """Add the versions first seen in this load to the lock file (a read-only
        policy directory is logged and left as it is: False)."""
        if not self.unlocked or self.folder is None:
            return True
        merged = {name: dict(versions) for name, versions in self.lock.items()}
        for name, versions in self.unlocked.items():
            merged.setdefault(name, {}).update(versions)
        try:
            write_lock(self.folder / LOCK_NAME, merged)
        except OSError as exc:
            log.warning("could not write %s (%s): new prompt versions are not locked yet",
                        self.folder / LOCK_NAME, exc)  # fmt: skip
            return False
        added = {name: sorted(v) for name, v in self.unlocked.items()}
        log.info("locked new prompt versions", extra={"fields": added})
        self.lock, self.unlocked = merged, {}
        return True


def prompts_folder(policy_path: Path) -> Path:
    """`prompts/` in the policy directory (beside the file, for a one-file policy)."""
    return (policy_path if policy_path.is_dir() else policy_path.parent) / PROMPTS_DIR


def load_prompts(folder: Path) -> tuple[PromptRegistry, list[PolicyIssue]]:
    """Every prompt file in `folder`; issues name the file, line and key path."""
    registry = PromptRegistry(folder=folder)
    issues: list[PolicyIssue] = []
    if not folder.is_dir():
        return registry, issues
    try:
        registry.lock = read_lock(folder / LOCK_NAME)
    except (ValueError, OSError, TypeError) as exc:
        issues.append(PolicyIssue(str(folder / LOCK_NAME), None, "", f"unreadable: {exc}"))
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    seen: dict[str, Path] = {}
    for path in files:
        located = Located()
        try:
            doc = parse_yaml(str(path), path.read_text("utf-8"), located)
        except PolicyError as exc:
            issues += exc.issues
            continue
        prompt = validate_file(doc, located)
        issues += located.issues
        if prompt is None:
            continue
        for key_path, message in prompt.errors():
            located.issue(key_path, message)
        if located.issues:
            issues += located.issues
            continue
        if prompt.name in seen:
            located.issue(
                ("name",), f"prompt {prompt.name!r} is also defined in {seen[prompt.name]}"
            )
            issues += located.issues
            continue
        seen[prompt.name] = path
        registry.prompts[prompt.name], registry.located[prompt.name] = prompt, located
        issues += compile_file(registry, prompt, doc)
    return registry, issues


def validate_file(doc: Any, located: Located) -> PromptFile | None:
    if not isinstance(doc, dict):
        located.issue((), "a prompt file must be a YAML mapping")
        return None
    try:
        return PromptFile.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors():
            located.issue(tuple(err["loc"]), pydantic_message(err))
        return None


def compile_file(
    registry: PromptRegistry, prompt: PromptFile, doc: dict[str, Any]
) -> list[PolicyIssue]:
    """Compile each version and check it against the lock: a locked version must hash as
    it did; an unlocked one is noted for the lock."""
    issues = []
    locked = registry.lock.get(prompt.name, {})
    for i, version in enumerate(prompt.versions):
        try:
            registry.compiled[(prompt.name, version.version)] = compile_version(
                prompt.name, version
            )
        except PromptDefinitionError as exc:
            issues.append(registry.issue(prompt.name, ("versions", i), str(exc)))
        digest = content_hash(doc["versions"][i])
        was = locked.get(version.version)
        if was is None:
            registry.unlocked.setdefault(prompt.name, {})[version.version] = digest
        elif was != digest:
            issues.append(registry.issue(prompt.name, ("versions", i), (
                f"{prompt.name} version {version.version} was changed after it was released "
                f"(prompts.lock has {was[:19]}..., the file now {digest[:19]}...): versions are "
                f"immutable, add version {prompt.latest.version + 1} instead"
            )))  # fmt: skip
    return issues


def prompt_errors(registry: PromptRegistry, policy: Policy) -> list[PolicyIssue]:
    """In the prompt files: models the policy does not define, labels naming experiments
    that do not exist or belong to another prompt."""
    issues = []
    for name, prompt in registry.prompts.items():
        for i, version in enumerate(prompt.versions):
            if version.model not in policy.models:
                issues.append(registry.issue(name, ("versions", i, "model"),
                                             f"unknown model {version.model!r}"))  # fmt: skip
        for label, target in prompt.labels.items():
            if isinstance(target, str):
                experiment = policy.experiments.get(target)
                if experiment is None or experiment.prompt != name:
                    message = f"no experiment {target!r} on prompt {name!r}"
                    issues.append(registry.issue(name, ("labels", label), message))
    return issues


def experiment_errors(registry: PromptRegistry, policy: Policy) -> list[tuple[KeyPath, str]]:
    """In the policy: experiments on unknown prompts, arms that are not versions or
    labels pointing at versions."""
    errors: list[tuple[KeyPath, str]] = []
    for name, experiment in policy.experiments.items():
        prompt = registry.prompts.get(experiment.prompt)
        if prompt is None:
            errors.append((("experiments", name, "prompt"),
                           f"unknown prompt {experiment.prompt!r}"))  # fmt: skip
            continue
        for arm in experiment.arms:
            if arm_version(registry, experiment.prompt, arm) is None:
                errors.append((("experiments", name, "arms", arm),
                               f"{arm!r} is neither a version of {experiment.prompt!r} nor a "
                               "label pointing at one"))  # fmt: skip
    return errors


def arm_version(registry: PromptRegistry, prompt: str, arm: str) -> CompiledVersion | None:
    if arm.isdigit():
        return registry.version(prompt, int(arm))
    target = registry.label_target(prompt, arm)
    return registry.version(prompt, target) if isinstance(target, int) else None
