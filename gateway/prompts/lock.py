"""`prompts.lock`: the content hash of every released prompt version. A version missing
from it is added; a locked version whose content changed is an error (add a version
instead of editing a released one)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import yaml

LOCK_NAME = "prompts.lock"
HEADER = """\
# llm-gateway prompt lock: the content hash of every released prompt version.
# Written by the gateway (and `gateway prompts lock`); commit it with the prompts.
# Editing a locked version is an error: add a new version instead.
"""

Lock = dict[str, dict[int, str]]  # prompt name -> version -> sha256:<hex>


def content_hash(version: dict[str, Any]) -> str:
    """The version as parsed (key order and YAML layout aside)."""
    canonical = orjson.dumps(version, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def read_lock(path: Path) -> Lock:
    """The lock file's entries ({} when there is none); ValueError when it is unreadable."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError("a lock file is a mapping of prompt names to versions")
    lock: Lock = {}
    for name, versions in data.items():
        if not isinstance(versions, dict):
            raise ValueError(f"{name}: a mapping of versions to hashes")
        lock[str(name)] = {int(v): str(h) for v, h in versions.items()}
    return lock


def render_lock(lock: Lock) -> str:
    lines = [HEADER]
    for name in sorted(lock):
        lines.append(f"{name}:")
        lines += [f"  {v}: {lock[name][v]}" for v in sorted(lock[name])]
    return "\n".join(lines) + "\n"


def write_lock(path: Path, lock: Lock) -> None:
    """Atomically (a temporary file renamed over the old one)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".prompts.lock.")
    replaced = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render_lock(lock))
        os.replace(tmp, path)
        replaced = True
    finally:
        if not replaced:  # whatever stopped the write: no temporary file left behind
            Path(tmp).unlink(missing_ok=True)
