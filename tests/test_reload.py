"""Hot reload: file changes and SIGHUP swap the policy; bad policies are rejected; requests
in flight finish on the policy they started with."""

import threading
import time
from pathlib import Path

import httpx

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from gateway.reload import PolicyReloader, watch_filter
from tests.conftest import DEFAULT_MODELS, GatewayServer, PolicyWriter

CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}]}


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def models(c: httpx.Client) -> set[str]:
    return {m["id"] for m in c.get("/v1/models").json()["data"]}


def test_file_change_reloads_and_bad_policy_is_rejected(
    write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    path = write_policy()
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=True)) as gw,
        httpx.Client(base_url=gw.base_url) as c,
    ):
        assert "extra" not in models(c)
        time.sleep(0.3)  # let the watcher start
        write_policy({**DEFAULT_MODELS, "extra": ("mock", "up-extra")})
        assert wait_for(lambda: "extra" in models(c))

        path.write_text(path.read_text().replace("provider: mock", "provider: typo"))
        reloader: PolicyReloader = gw.app.state.reloader
        generation = reloader.generation
        time.sleep(1.0)
        assert reloader.generation == generation  # rejected
        assert "extra" in models(c)  # the old policy keeps serving
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_in_flight_requests_finish_on_their_policy(
    write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    path = write_policy()
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url, timeout=10) as c,
    ):
        mock.behave("up-gpt", Behavior(chunk_interval_s=0.1))
        received: list[str] = []

        def stream() -> None:
            with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
                received.append(r.read().decode())

        worker = threading.Thread(target=stream)
        worker.start()
        assert wait_for(lambda: len(mock.requests) == 1)
        # the new policy drops the provider the stream is using
        write_policy({"other": ("claude", "claude-up")})
        reloader: PolicyReloader = gw.app.state.reloader
        assert reloader.reload_from_thread("test")
        worker.join(10)
        assert received[0].endswith("data: [DONE]\n\n")
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 404
        assert c.post("/v1/chat/completions", json={**CHAT, "model": "other"}).status_code == 200


def test_unchanged_providers_keep_their_connection_pool(
    write_policy: PolicyWriter, mock: MockUpstream, tmp_path: Path
) -> None:
    path = write_policy()
    with GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw:
        reloader: PolicyReloader = gw.app.state.reloader
        before = reloader.state.runtime.providers
        write_policy({**DEFAULT_MODELS, "extra": ("mock", "up-extra")})
        assert reloader.reload_from_thread("test")
        after = reloader.state.runtime.providers
        # each write picks a new port for the `dead` provider: only that one is rebuilt
        assert [name for name in before if after[name] is not before[name]] == ["dead"]


def test_only_policy_and_prompt_files_trigger_a_reload(tmp_path: Path) -> None:
    """A request log, a lock file or an editor's swap file beside the policy is no reason
    to reload (a DuckDB file in the policy folder once reloaded it on every flush)."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    relevant = watch_filter(tmp_path)
    assert relevant(None, str(tmp_path / "policy.yaml"))
    assert relevant(None, str(tmp_path / "prompts" / "p.yml"))
    for name in ("requests.duckdb", "requests.duckdb.wal", "prompts/prompts.lock",
                 "prompts/.prompts.lock.x1y2", ".policy.yaml.swp", "sub/other.yaml"):  # fmt: skip
        assert not relevant(None, str(tmp_path / name)), name
    single = watch_filter(tmp_path / "policy.yaml")
    assert single(None, str(tmp_path / "policy.yaml"))
    assert not single(None, str(tmp_path / "other.yaml"))
    assert single(None, str(tmp_path / "prompts" / "p.yaml"))
