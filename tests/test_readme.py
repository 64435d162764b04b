"""The README's snippets run as written: every YAML block is a valid policy, every shell
block parses, names only gateway commands that exist and files that exist, and its
`gateway check`/`gateway serve` lines succeed; the Python quickstart answers against a
real `gateway serve` on the packaged default policy. (The first block, the two commands,
is what CI itself runs.)"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.cli import build_parser
from gateway.policy.loader import load_policy, parse_texts
from tests.conftest import wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
BLOCKS = [(lang, body) for lang, body in BLOCK.findall(README)]
ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCKS if kind == lang]


def commands(block: str) -> list[str]:
    """Logical lines (backslash continuations joined, comments dropped)."""
    joined = block.replace("\\\n", " ")
    lines = [line.split(" #", 1)[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_starts_with_the_two_commands() -> None:
    first = commands(blocks("bash")[0])
    assert first[0].endswith(".venv/bin/gateway serve")
    assert first[1].endswith(".venv/bin/python -m pytest")
    ci = (ROOT / ".ci/run").read_text()
    assert ".venv/bin/python -m pytest" in ci  # CI calls the README's test command


PROMPT_BLOCKS = [b for b in blocks("yaml") if b.startswith("name:")]
EXAMPLE = ROOT / "examples" / "support"


@pytest.mark.parametrize("policy", [b for b in blocks("yaml") if b not in PROMPT_BLOCKS])
def test_every_yaml_block_is_a_valid_policy(policy: str) -> None:
    env = {name: "set-by-test" for name in ENV_VAR.findall(policy)}
    loaded = parse_texts([("README.md", policy)], env)
    assert loaded.models


def test_every_shell_block_parses_and_names_real_things() -> None:
    parser = build_parser()
    for block in blocks("bash"):
        subprocess.run(["bash", "-n"], input=block, text=True, check=True)
        for line in commands(block):
            for part in re.split(r"&&|\|", line):
                words = shlex.split(part)
                if not words:
                    continue
                program = words[0].rsplit("/", 1)[-1]
                if program == "gateway":
                    parser.parse_args(words[1:])  # exits (fails the test) if it would not
                    for word in words[1:]:
                        if word.endswith((".yaml", ".yml")):
                            assert (ROOT / word).exists(), word
                if program == "docker" and words[1] == "build":
                    assert (ROOT / "Dockerfile").exists()


def shell_env(block: str) -> dict[str, str]:
    env = dict(os.environ)
    for line in commands(block):
        if line.startswith("export "):
            for assignment in shlex.split(line)[1:]:
                name, _, value = assignment.partition("=")
                env[name] = value
    return env


def gateway_argv(line: str) -> list[str]:
    words = shlex.split(line)
    return [sys.executable, "-m", "gateway", *words[1:]]


@contextmanager
def served(argv: list[str], env: dict[str, str]) -> Iterator[str]:
    """The command as written (port 8080, as the README says), until it is ready."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.DEVNULL, text=True)
    base = "http://127.0.0.1:8080"
    try:
        wait_until_ready(proc, base, 120)
        yield base
    finally:
        proc.terminate()
        proc.wait(60)


def port_8080_free() -> bool:
    try:
        httpx.get("http://127.0.0.1:8080/healthz", timeout=0.5)
    except httpx.TransportError:
        return True
    return False


def test_own_keys_block_checks_and_serves_as_written() -> None:
    block = next(b for b in blocks("bash") if "gateway check" in b)
    env = shell_env(block)
    lines = commands(block)
    for line in lines:
        if line.startswith("gateway check"):
            done = subprocess.run(gateway_argv(line), cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, done.stderr
    serve = next(line for line in lines if line.startswith("gateway serve"))
    assert port_8080_free(), "something else listens on 8080"
    log = ROOT / "requests.duckdb"  # the example's request log, relative to where it runs
    existed = log.exists()
    try:
        with served(gateway_argv(serve), env) as base:
            models = httpx.get(base + "/v1/models").json()
            assert {m["id"] for m in models["data"]} == {"gpt-4o-mini", "smollm2-135m-instruct"}
    finally:
        if not existed:
            for path in ROOT.glob("requests.duckdb*"):
                path.unlink()


def test_python_quickstart_runs_against_the_default_policy() -> None:
    snippet = blocks("python")[0]
    compile(snippet, "README.md", "exec")
    assert port_8080_free(), "something else listens on 8080"
    with served([sys.executable, "-m", "gateway", "serve"], dict(os.environ)):
        done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "The capital of France is Paris."
    assert lines[1] == "384"
    assert len(lines) > 2 and lines[2].strip()  # the streamed greeting


def test_every_python_block_compiles() -> None:
    for block in blocks("python"):
        compile(block, "README.md", "exec")


def test_links_to_docs_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_prompt_blocks_are_the_example_files() -> None:
    """The README's prompt file and experiment policy are examples/support's, as parsed."""
    (prompt,) = PROMPT_BLOCKS
    assert yaml.safe_load(prompt) == yaml.safe_load(
        (EXAMPLE / "prompts" / "support-reply.yaml").read_text()
    )
    policy = next(b for b in blocks("yaml") if "experiments:" in b)
    assert yaml.safe_load(policy) == yaml.safe_load((EXAMPLE / "policy.yaml").read_text())
    assert load_policy(EXAMPLE).prompts.unlocked == {}  # the example's lock is committed


def test_prompts_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """check, render, serve, the Python client (40 requests with feedback), the report."""
    block = next(b for b in blocks("bash") if "prompts render" in b)
    lines = commands(block)
    env = dict(os.environ)
    for line in lines[:-1]:
        done = subprocess.run(gateway_argv(line), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert (
        "You are a support agent for Acme"
        in subprocess.run(
            gateway_argv(lines[1]), cwd=ROOT, capture_output=True, text=True, timeout=60
        ).stdout
    )
    client = next(b for b in blocks("python") if "prompt:support-reply" in b)
    report = next(b for b in blocks("bash") if "experiments report" in b)
    log = ROOT / "support.duckdb"
    assert not log.exists(), "a request log from another run is in the way"
    assert port_8080_free(), "something else listens on 8080"
    try:
        with served(gateway_argv(lines[-1]), env):
            done = subprocess.run([sys.executable, "-c", client], capture_output=True,
                                  text=True, timeout=300)  # fmt: skip
            assert done.returncode == 0, done.stderr
        out = subprocess.run(gateway_argv(commands(report)[0]), cwd=ROOT, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "verdict: not enough data" in out.stdout and "test msprt" in out.stdout
        rows = [
            line.split() for line in out.stdout.splitlines() if line.strip()[:2] in ("3 ", "4 ")
        ]
        assert sum(int(row[2]) for row in rows) == 40  # every request, on one arm or the other
    finally:
        for path in ROOT.glob("support.duckdb*"):
            path.unlink()
