"""The gateways under comparison, each started as its own process in front of the same
mock upstream: ours, LiteLLM's proxy and Portkey's open-source gateway. Peers are
installed into isolated environments under `benchmarks/.peers/` on first use.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from benchmarks.mock_upstream import free_port

PEERS = Path(__file__).parent / ".peers"
LITELLM_SPEC = "litellm[proxy]"
PORTKEY_SPEC = "@portkey-ai/gateway@1.15.2"
MASTER_KEY = "sk-bench-master"
MODELS = ("mock-model", "mock-stream")

# Portkey 1.15.2 binds every interface with no host flag, and its streaming fails with
# "TypeError: immutable" on Node's fetch responses: bind loopback, re-wrap responses.
PORTKEY_PRELOAD = """
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") { args.splice(1, 0, "127.0.0.1"); }
  else if (args[0] && typeof args[0] === "object" && !args[0].host) { args[0].host = "127.0.0.1"; }
  return listen.apply(this, args);
};
const fetch0 = globalThis.fetch;
globalThis.fetch = async (...a) => {
  const r = await fetch0(...a);
  return new Response(r.body, { status: r.status, statusText: r.statusText, headers: new Headers(r.headers) });
};
"""


@dataclass
class Target:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/v1/chat/completions"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def rss_mb(self) -> float:
        """Resident memory of the process and all its descendants (workers)."""
        return sum(_rss_kb(pid) for pid in process_tree(self.process.pid)) / 1024


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(p) for p in task.read_text().split()]
    return pids


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of a process and of all its descendants (a gateway's
    workers or its OTLP export process), from /proc."""

    def of(one: int) -> float:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    return of(pid), sum(of(c) for c in process_tree(pid) if c != pid)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def answers(port: int, headers: dict[str, str], model: str = "mock-model") -> bool:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/chat/completions", body,
                     {"content-type": "application/json", **headers})  # fmt: skip
        return conn.getresponse().status == 200
    except OSError:
        return False


@contextmanager
def started(name: str, command: list[str], port: int, headers: dict[str, str],
            env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[Target]:  # fmt: skip
    log = open(PEERS / f"{name}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not answers(port, headers):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {PEERS / (name + '.log')}")
            time.sleep(0.25)
        yield Target(name, port, proc, headers)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def mock(port: int, chunks: int, interval_ms: float) -> list[str]:
    return [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(port),
            "--stream-chunks", str(chunks), "--chunk-interval-ms", str(interval_ms)]  # fmt: skip


def our_policy(mock_port: int, extra: str = "") -> str:
    models = "".join(
        f"  {m}:\n    provider: mock\n    upstream_model: {m}\n{extra}" for m in MODELS
    )
    return (f"version: 1\nproviders:\n  mock:\n    type: openai\n"
            f"    base_url: http://127.0.0.1:{mock_port}/v1\nmodels:\n{models}")  # fmt: skip


@contextmanager
def ours(name: str, policy: str, workers: int = 1) -> Iterator[Target]:
    PEERS.mkdir(exist_ok=True)
    path = PEERS / f"{name}.yaml"
    path.write_text(policy)
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--policy", str(path), "--port",
               str(port), "--workers", str(workers)]  # fmt: skip
    with started(name, command, port, {}) as target:
        yield target


@contextmanager
def floor(mock_port: int) -> Iterator[Target]:
    """`benchmarks.floor_app`: the least a Python relay on uvicorn and aiohttp adds here."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.floor_app", str(port), str(mock_port)]
    with started("floor", command, port, {}) as target:
        yield target


NGINX_CONF = """
worker_processes 1;
daemon off;
user root;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  upstream mock {{ server 127.0.0.1:{mock_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""


@contextmanager
def nginx(mock_port: int) -> Iterator[Target]:
    """Debian's nginx as a plain reverse proxy (one worker, keep-alive upstream, no
    buffering): what a relay written in C adds on this machine, beside the floor."""
    root = PEERS / "nginx"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, mock_port=mock_port, port=port))
    command = ["nginx", "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")]
    with started("nginx", command, port, {}) as target:
        yield target


def install_litellm() -> Path:
    venv = PEERS / "litellm"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "litellm").exists():
        PEERS.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", LITELLM_SPEC], check=True)
    return venv


def litellm_version() -> str:
    python = PEERS / "litellm" / "bin" / "python"
    out = subprocess.run([str(python), "-m", "pip", "show", "litellm"], capture_output=True,
                         text=True, check=False)  # fmt: skip
    return next(
        (line.split()[1] for line in out.stdout.splitlines() if line.startswith("Version")), "?"
    )


@contextmanager
def litellm(mock_port: int, workers: int = 1) -> Iterator[Target]:
    venv = install_litellm()
    config = PEERS / "litellm.yaml"
    entries = "".join(
        f"  - model_name: {m}\n    litellm_params:\n      model: openai/{m}\n"
        f"      api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-mock\n"
        for m in MODELS
    )
    config.write_text(f"model_list:\n{entries}")
    port = free_port()
    command = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
               "--port", str(port), "--num_workers", str(workers)]  # fmt: skip
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": MASTER_KEY,
           "LITELLM_LOG": "ERROR"}  # fmt: skip
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    name = "litellm" if workers == 1 else f"litellm-{workers}w"
    with started(name, command, port, headers, env) as target:
        yield target


def install_portkey() -> Path:
    root = PEERS / "portkey"
    entry = root / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not entry.exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "package.json").write_text('{"name": "bench-portkey", "private": true}\n')
        subprocess.run(["npm", "install", "--silent", PORTKEY_SPEC], cwd=root, check=True)
    (root / "preload.cjs").write_text(PORTKEY_PRELOAD)
    return entry


@contextmanager
def portkey(mock_port: int) -> Iterator[Target]:
    entry = install_portkey()
    port = free_port()
    command = ["node", "--require", str(entry.parents[4] / "preload.cjs"), str(entry),
               f"--port={port}", "--headless"]  # fmt: skip
    headers = {"x-portkey-provider": "openai", "authorization": "Bearer sk-mock",
               "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1"}  # fmt: skip
    with started("portkey", command, port, headers, {"NODE_ENV": "production"}) as target:
        yield target
