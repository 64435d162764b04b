"""`gateway` as a user runs it: real processes, signals and logs."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

from benchmarks.mock_upstream import Behavior, MockUpstream, free_port
from tests.conftest import DEFAULT_MODELS, PolicyWriter, wait_until_ready

GATEWAY = [sys.executable, "-m", "gateway"]
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}]}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=60)


@contextmanager
def serving(*args: str, start_s: float = 20) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [*GATEWAY, "serve", "--port", str(port), *args], stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, base, start_s)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()


def test_version() -> None:
    out = run("version")
    assert out.returncode == 0 and out.stdout.startswith("llm-gateway ")


def test_check_reports_every_error_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nproviders:\n  p:\n    type: openai\n    base_url: ftp://x\nmodels:\n  m:\n    provider: q\n    upstream_model: u\n    colour: red\n"
    )
    out = run("check", str(bad))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"{bad}:5: providers.p.base_url: must start with http:// or https:// (got 'ftp://x')",
        f"{bad}:10: models.m.colour: unknown key",
    ]


def test_check_accepts_the_shipped_policies() -> None:
    env = {
        **os.environ,
        "OPENAI_API_KEY": "k",
        "ANTHROPIC_API_KEY": "k",
        "AZURE_OPENAI_API_KEY": "k",
        "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
    }
    out = subprocess.run(
        [*GATEWAY, "check", "policies"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_refuses_a_public_bind_without_keys() -> None:
    out = run("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert out.returncode == 2
    assert "refusing to bind 0.0.0.0" in out.stderr


def test_serve_on_the_packaged_default_policy() -> None:
    # on a fresh machine the first start fetches the built-in local models
    with serving(start_s=180) as (_, base):
        models = {m["id"] for m in httpx.get(base + "/v1/models").json()["data"]}
        assert {"smollm2-135m-instruct", "all-minilm-l6-v2"} <= models
        answer = httpx.post(base + "/v1/chat/completions", timeout=60, json={
            "model": "smollm2-135m-instruct", "temperature": 0, "max_tokens": 20,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        }).json()  # fmt: skip
        assert "Paris" in answer["choices"][0]["message"]["content"]
        assert httpx.get(base + "/readyz").json()["policy"] == "<packaged default policy>"


def test_serve_logs_sighup_reload_and_graceful_sigterm(
    write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    path = write_policy()
    with serving("--policy", str(path)) as (proc, base):
        r = httpx.post(
            base + "/v1/chat/completions", json=CHAT, headers={"x-request-id": "cli-req-1"}
        )
        assert r.status_code == 200

        write_policy({**DEFAULT_MODELS, "added": ("mock", "up-added")})
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "added" not in httpx.get(base + "/v1/models").text:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        mock.behave("up-gpt", Behavior(chunk_interval_s=0.1))  # a ~1 s stream
        result: list[str] = []
        stream = threading.Thread(
            target=lambda: result.append(
                httpx.post(
                    base + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=10
                ).text
            )
        )
        stream.start()
        while len(mock.requests) < 2:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        stream.join(10)
        assert result and result[0].endswith("data: [DONE]\n\n")  # finished, not cut
        assert proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
        assert proc.stderr is not None
        lines = [
            orjson.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")
        ]
    access = [line for line in lines if line["logger"] == "gateway.access"]
    first = next(line for line in access if line["request_id"] == "cli-req-1")
    assert first["model"] == "gpt" and first["provider"] == "mock" and first["status"] == 200
    assert first["latency_ms"] > 0
    assert any(line["msg"] == "policy reloaded" and line["reason"] == "SIGHUP" for line in lines)
    assert "sk-upstream-secret" not in str(lines)


def test_serve_with_workers(write_policy: PolicyWriter, mock: MockUpstream) -> None:
    path = write_policy()
    with serving("--policy", str(path), "--workers", "2") as (_, base):
        for _ in range(4):
            assert httpx.post(base + "/v1/chat/completions", json=CHAT).status_code == 200


def test_guardrails_eval_prints_scores_per_scanner(tmp_path: Path) -> None:
    data = tmp_path / "labels.jsonl"
    lines = [{"text": "key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "label": "secret"},
             {"text": "nothing here", "label": "benign"},
             {"text": "token ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "label": "secret"},
             {"text": "sk-not-a-key", "label": "secret"}]  # fmt: skip
    data.write_text("\n".join(orjson.dumps(line).decode() for line in lines))
    out = run("guardrails", "eval", str(data), "--guardrail", "secrets")
    assert out.returncode == 0, out.stderr
    header, _, row = out.stdout.splitlines()
    assert header.split() == [
        "guardrail",
        "precision",
        "recall",
        "f1",
        "fpr",
        "p50_ms",
        "p95_ms",
        "rows",
    ]
    assert row.split()[:5] == ["secrets", "1.000", "0.667", "0.800", "0.000"]
    spans = run(
        "guardrails",
        "eval",
        str(Path(__file__).parent / "fixtures" / "pii_generated.jsonl"),
        "--guardrail",
        "pii",
    )
    precision, recall = (float(x) for x in spans.stdout.splitlines()[2].split()[1:3])
    assert precision > 0.9 and recall > 0.9
    assert run("guardrails", "eval", str(data), "--guardrail", "nope").returncode == 2


def test_guardrails_eval_undefined_figures_and_bad_lines(tmp_path: Path) -> None:
    benign = tmp_path / "benign.jsonl"
    benign.write_text('{"text": "nothing here", "label": "benign"}\n')
    out = run("guardrails", "eval", str(benign), "--guardrail", "secrets")
    assert out.returncode == 0, out.stderr
    # nothing flagged and nothing to find: precision, recall and F1 are undefined
    assert out.stdout.splitlines()[2].split()[1:5] == ["n/a", "n/a", "n/a", "0.000"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": "benign"}\n{"text": "cut\n[1]\n')
    out = run("guardrails", "eval", str(bad))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{bad}:2: not JSON" in out.stderr
    bad.write_text('{"text": "ok", "label": "benign"}\n[1]\n')
    out = run("guardrails", "eval", str(bad))
    assert out.returncode == 2 and f"{bad}:2: expected an object" in out.stderr
    help_text = run("guardrails", "eval", "--help").stdout
    assert "pii, secrets and injection" in " ".join(help_text.split())


def test_stats_and_logs_print_numbers_without_float_noise() -> None:
    from decimal import Decimal

    from gateway.stats import cell

    assert cell(151.44000244140625) == "151.44"
    assert cell(151.39999389648438) == "151.4"
    assert cell(Decimal("0.0001500000")) == "0.00015"
    assert cell(0.0) == "0" and cell(None) == "" and cell(7) == "7"
