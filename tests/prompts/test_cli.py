"""`gateway prompts list | show | render | diff | lock` on a policy directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway.prompts.lock import read_lock
from tests.prompts.conftest import PROMPT, PolicyDir


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_list_show_render_diff(policy_dir: PolicyDir) -> None:
    root = str(policy_dir())
    out = gateway("prompts", "list", "--policy", root)
    assert out.returncode == 0, out.stderr
    assert (
        "support-reply: versions 3, 4; labels production=3, staging=4; experiments reply-tone"
        in out.stdout
    )
    out = gateway("prompts", "show", "support-reply", "--policy", root)
    assert "version 3: model chat, 2 messages, not locked yet" in out.stdout
    out = gateway("prompts", "show", "support-reply@production", "--policy", root)
    assert out.stdout.startswith("# support-reply@3  sha256:") and "maxLength: 4000" in out.stdout
    variables = json.dumps({"product": "Acme", "question": "Where?", "language": "German"})
    out = gateway("prompts", "render", "support-reply@3", "--vars", variables, "--policy", root)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["model"] == "chat" and body["temperature"] == 0.2
    assert body["messages"][0]["content"] == "You are a support agent for Acme. Answer in German."
    out = gateway("prompts", "render", "support-reply@3", "--vars", '{"product": "Acme"}',
                  "--policy", root)  # fmt: skip
    assert out.returncode == 1 and "Prompt variable 'question' is missing" in out.stderr
    out = gateway("prompts", "render", "support-reply@experiment", "--vars",
                  '{"product": "A", "question": "Q"}', "--user", "alice", "--policy", root)  # fmt: skip
    assert out.returncode == 0 and "# experiment reply-tone: arm" in out.stderr
    out = gateway("prompts", "diff", "support-reply@3", "support-reply@4", "--policy", root)
    assert out.stdout.startswith("--- support-reply@3\n+++ support-reply@4\n")
    assert "-model: chat\n" in out.stdout and "+model: small\n" in out.stdout
    out = gateway("prompts", "show", "nope@1", "--policy", root)
    assert out.returncode == 1 and "no prompt 'nope'" in out.stderr


def test_lock_then_check_refuses_an_edited_version(policy_dir: PolicyDir) -> None:
    root = policy_dir()
    out = gateway("prompts", "lock", str(root))
    assert out.returncode == 0, out.stderr
    assert "locked support-reply version(s) 3, 4" in out.stdout
    assert set(read_lock(root / "prompts" / "prompts.lock")["support-reply"]) == {3, 4}
    assert gateway("check", str(root)).returncode == 0
    path: Path = root / "prompts" / "support-reply.yaml"
    path.write_text(
        PROMPT.replace("{type: string, maxLength: 4000}", "{type: string, maxLength: 8000}", 1)
    )
    out = gateway("check", str(root))
    assert out.returncode == 1
    assert f"{path}:3: versions[0]: support-reply version 3 was changed" in out.stderr
