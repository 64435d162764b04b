"""The DuckDB request log: real files, a real gateway, real failures."""

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from gateway.context import Attempt, RequestContext
from gateway.policy.models import TelemetryConfig
from gateway.telemetry.duckdb_sink import DuckDBSink
from gateway.telemetry.schema import VERSION, migrate
from gateway.telemetry.tokens import encoding
from tests.conftest import GatewayServer, PolicyWriter

CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}]}


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_one_row_per_request_of_every_kind(
    write_policy: PolicyWriter, mock: MockUpstream, tmp_path: Path
) -> None:
    db = tmp_path / "log" / "requests.duckdb"
    models = {
        "gpt": ("mock", "up-gpt"),
        "claude": ("claude", "claude-up"),
        "flaky": ("mock", "up-flaky"),
    }
    path = write_policy(
        models,
        fallbacks={"flaky": ["claude"]},
        extra=f"telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.2\n",
    )
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url, timeout=10) as c,
    ):
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "metadata": {"team": "search"}},
            headers={"x-request-id": "ok-1"},
        )
        streamed = c.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-request-id": "stream-1"},
        )
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "claude", "stream": True, "user": "u-9"},
            headers={"x-request-id": "stream-2"},
        )
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "nope"},
            headers={"x-request-id": "unknown-1"},
        )
        c.post(
            "/v1/chat/completions",
            content=b"{",
            headers={"x-request-id": "bad-1", "content-type": "application/json"},
        )
        mock.behave("up-flaky", Behavior(status=503))
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "flaky"},
            headers={"x-request-id": "fallback-1"},
        )
        mock.behave("up-gpt", Behavior(status=500))
        c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "upstream-500"})
        mock.behave("up-gpt", Behavior(chunk_interval_s=0.3))
        with c.stream(
            "POST",
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-request-id": "cancelled-1"},
        ) as r:
            next(r.iter_raw())
        time.sleep(0.5)
    # streams ask upstream for usage; the client that did not ask sees none of it
    assert mock.requests[1].body["stream_options"] == {"include_usage": True}
    assert '"usage"' not in streamed.text

    found = {
        r[0]: r[1:]
        for r in rows(
            db,
            "SELECT request_id, status, model, provider, stream, input_tokens, output_tokens, error_type, client_disconnected, attempts, end_user, finish_reasons FROM requests",
        )
    }
    assert set(found) == {
        "ok-1",
        "stream-1",
        "stream-2",
        "unknown-1",
        "bad-1",
        "fallback-1",
        "upstream-500",
        "cancelled-1",
    }
    assert found["ok-1"] == (200, "gpt", "mock", False, 9, 8, None, False, 1, None, "stop")
    assert found["stream-1"] == (
        200,
        "gpt",
        "mock",
        True,
        9,
        8,
        None,
        False,
        1,
        None,
        "stop",
    )  # same tokens as non-stream
    assert found["stream-2"][4:6] == (14, 8) and found["stream-2"][9] == "u-9"
    assert found["unknown-1"][:2] == (404, "nope") and found["unknown-1"][6] == "model_not_found"
    assert found["bad-1"][0] == 400
    assert found["fallback-1"][:3] == (200, "flaky", "claude") and found["fallback-1"][8] == 2
    assert found["upstream-500"][0] == 500
    assert found["cancelled-1"][7] is True
    assert rows(db, "SELECT tags, cache_status FROM requests WHERE request_id = 'ok-1'") == [
        ('{"team":"search"}', None)  # the model has no cache
    ]
    attempts = rows(
        db,
        "SELECT attempt, provider, status FROM attempts WHERE request_id = 'fallback-1' ORDER BY attempt",
    )
    assert attempts == [(1, "mock", 503), (2, "claude", 200)]
    timing = rows(
        db,
        "SELECT latency_ms, ttfb_ms, upstream_ms, overhead_ms FROM requests WHERE request_id = 'ok-1'",
    )[0]
    assert all(isinstance(v, float) and v >= 0 for v in timing)
    assert float(timing[2]) <= float(timing[0])  # type: ignore[arg-type]


def ctx(request_id: str) -> RequestContext:
    c = RequestContext(request_id, "POST", "/v1/chat/completions", model="m", status=200)
    c.attempts.append(Attempt("p", "u", 200, 0.001))
    c.finished_at = c.started + 0.002
    return c


def test_locked_file_spools_and_replays(tmp_path: Path) -> None:
    db = tmp_path / "requests.duckdb"
    duckdb.connect(str(db)).close()
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        sink = DuckDBSink(db, TelemetryConfig(flush_interval_s=0.1), lock_wait_s=0.2)
        for i in range(3):
            sink.record(ctx(f"spooled-{i}"))
        deadline = time.monotonic() + 5
        while sink.spooled < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert sink.spool.exists()
    finally:
        locker.kill()
        locker.wait()
        if locker.stdout is not None:
            locker.stdout.close()
    for i in range(2):
        sink.record(ctx(f"later-{i}"))
    asyncio.run(sink.aclose())
    ids = {r[0] for r in rows(db, "SELECT request_id FROM requests")}
    assert ids == {"spooled-0", "spooled-1", "spooled-2", "later-0", "later-1"}
    assert not sink.spool.exists()


async def test_aclose_flushes_everything_queued(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "r.duckdb", TelemetryConfig(flush_interval_s=30))
    for i in range(1000):
        sink.record(ctx(f"r{i}"))
    await sink.aclose()
    assert rows(tmp_path / "r.duckdb", "SELECT count(*) FROM requests") == [(1000,)]


def test_migrations_upgrade_in_place_and_refuse_newer(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    assert migrate(con) == 0
    assert migrate(con) == VERSION  # idempotent
    con.execute("INSERT INTO schema_version VALUES (?)", [VERSION + 1])
    with pytest.raises(RuntimeError, match="newer"):
        migrate(con)
    con.close()


def test_sigterm_with_streams_in_flight_keeps_every_row(
    write_policy: PolicyWriter, mock: MockUpstream, tmp_path: Path
) -> None:
    from tests.test_cli import serving

    db = tmp_path / "requests.duckdb"
    path = write_policy(extra=f"telemetry:\n  duckdb: {db}\n  flush_interval_s: 5\n")
    mock.behave("up-gpt", Behavior(chunk_interval_s=0.1))
    with serving("--policy", str(path)) as (proc, base):
        bodies: list[str] = []
        threads = [
            threading.Thread(
                target=lambda: bodies.append(
                    httpx.post(
                        base + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=10
                    ).text
                )
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        while len(mock.requests) < 3:
            time.sleep(0.01)
        proc.terminate()
        for t in threads:
            t.join(10)
        proc.wait(15)
    assert len(bodies) == 3 and all(b.endswith("data: [DONE]\n\n") for b in bodies)
    statuses = rows(
        db, "SELECT status, stream, output_tokens FROM requests WHERE path = '/v1/chat/completions'"
    )
    assert statuses == [(200, True, 8)] * 3


def test_stats_and_logs_commands(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    sink = DuckDBSink(db, TelemetryConfig(flush_interval_s=30))
    for i in range(5):
        sink.record(ctx(f"r{i}"))
    asyncio.run(sink.aclose())
    stats = subprocess.run(
        [sys.executable, "-m", "gateway", "stats", "--db", str(db), "--by", "model"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stats.returncode == 0, stats.stderr
    header, _, first = stats.stdout.splitlines()[:3]
    assert header.split()[:3] == ["model", "requests", "errors"]
    assert first.split()[:3] == ["m", "5", "0"]
    logs = subprocess.run(
        [sys.executable, "-m", "gateway", "logs", "--db", str(db), "--limit", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 4
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "stats",
            "--db",
            str(db),
            "--since",
            "1 day; DROP TABLE requests",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert orjson.loads(orjson.dumps(rows(db, "SELECT count(*) FROM requests"))) == [[5]]


def test_tokens_and_cost_same_for_stream_and_non_stream(
    write_policy: PolicyWriter, mock: MockUpstream, tmp_path: Path
) -> None:
    db = tmp_path / "requests.duckdb"
    models = {"priced": ("mock", "gpt-4o-mini"), "silent": ("mock", "up-silent")}
    path = write_policy(models, extra=f"telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.2\n")
    mock.behave("gpt-4o-mini", Behavior(usage={"prompt_tokens": 1000, "completion_tokens": 100}))
    mock.behave("up-silent", Behavior(no_usage=True))
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url) as c,
    ):
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "priced"},
            headers={"x-request-id": "p-whole"},
        )
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "priced", "stream": True},
            headers={"x-request-id": "p-stream"},
        )
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "silent"},
            headers={"x-request-id": "s-whole"},
        )
        c.post(
            "/v1/chat/completions",
            json={**CHAT, "model": "silent", "stream": True},
            headers={"x-request-id": "s-stream"},
        )
    found = {
        r[0]: r[1:]
        for r in rows(
            db,
            "SELECT request_id, input_tokens, output_tokens, tokens_estimated, cost_usd::VARCHAR, price_source, span_id FROM requests",
        )
    }
    # 1000 * $0.15 + 100 * $0.60 per million tokens (genai-prices, gpt-4o-mini)
    assert found["p-whole"][:5] == (1000, 100, False, "0.0002100000", "genai-prices")
    assert found["p-stream"][:5] == found["p-whole"][:5]
    assert found["s-whole"][2] is True and found["s-whole"][:2] == found["s-stream"][:2]
    expected = len(encoding("o200k_base").encode("Hello! How can I help you today?"))
    assert found["s-whole"][:2] == (1, expected)  # "Hi" and the answer, in o200k_base
    assert found["s-whole"][3] is None  # no price known for this model: no cost, not a guess
    assert len(str(found["p-whole"][5])) == 16


def test_content_is_captured_only_when_the_policy_opts_in(
    write_policy: PolicyWriter, mock: MockUpstream, tmp_path: Path
) -> None:
    for opt_in in (False, True):
        db = tmp_path / f"capture-{opt_in}.duckdb"
        extra = f"telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.2\n  capture_content: {str(opt_in).lower()}\n"
        with (
            GatewayServer(
                Settings(policy_path=str(write_policy(extra=extra)), watch_policy=False)
            ) as gw,
            httpx.Client(base_url=gw.base_url) as c,
        ):
            c.post(
                "/v1/chat/completions",
                json={**CHAT, "messages": [{"role": "user", "content": "secret plans"}]},
            )
            c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        captured = rows(db, "SELECT input, output FROM contents ORDER BY started_at")
        if not opt_in:
            assert captured == []
            assert "secret plans" not in db.read_bytes().decode("latin-1")
        else:
            assert [orjson.loads(str(i))["messages"][0]["content"] for i, _ in captured] == [
                "secret plans",
                "Hi",
            ]
            assert [o for _, o in captured] == ["Hello! How can I help you today?"] * 2


def test_retention_by_age_and_by_size(tmp_path: Path) -> None:
    from gateway.telemetry.duckdb_sink import apply_retention

    db = tmp_path / "r.duckdb"
    sink = DuckDBSink(db, TelemetryConfig(flush_interval_s=30))
    for i in range(100):
        c = ctx(f"r{i}")
        c.started_unix -= (100 - i) * 86400  # one a day, the oldest 100 days ago
        c.attempts.insert(0, Attempt("p", "u", 503, 0.001, "503"))  # a fallback: 2 attempt rows
        sink.record(c)
    asyncio.run(sink.aclose())
    con = duckdb.connect(str(db))
    apply_retention(con, TelemetryConfig(retention_days=31), db)  # keeps the 30 days ago 1..30
    assert con.execute("SELECT count(*), count(DISTINCT request_id) FROM requests").fetchone() == (
        30,
        30,
    )
    assert con.execute("SELECT count(*) FROM attempts").fetchone() == (60,)
    apply_retention(con, TelemetryConfig(max_size_mb=1), db)  # smaller than any DuckDB file
    assert con.execute("SELECT count(*) FROM requests").fetchone() == (
        28,
    )  # below the 10% quantile
    assert con.execute("SELECT min(request_id) FROM requests").fetchone() == ("r72",)
    con.close()


def test_hard_kill_loses_at_most_the_last_flush_interval(
    write_policy: PolicyWriter, mock: MockUpstream, tmp_path: Path
) -> None:
    import signal

    from tests.test_cli import serving

    db = tmp_path / "requests.duckdb"
    path = write_policy(extra=f"telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.3\n")
    with serving("--policy", str(path)) as (proc, base):
        for _ in range(5):
            httpx.post(base + "/v1/chat/completions", json=CHAT)
        time.sleep(1.0)  # more than one flush interval
        # readers open the file while the gateway runs (it holds it only while flushing)
        stats = subprocess.run(
            [sys.executable, "-m", "gateway", "stats", "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stats.returncode == 0, stats.stderr
        assert stats.stdout.splitlines()[2].split()[:2] == ["gpt", "5"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert rows(db, "SELECT count(*) FROM requests WHERE path = '/v1/chat/completions'") == [(5,)]


def test_an_older_file_is_upgraded_in_place_keeping_its_rows(tmp_path: Path) -> None:
    from gateway.telemetry.schema import MIGRATIONS

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0]:  # a file written by the first release
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (1)")
    con.execute(
        "INSERT INTO requests (request_id, started_at, status) VALUES ('old-1', now()::TIMESTAMP, 200)"
    )
    assert migrate(con) == 1
    assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (VERSION,)
    assert con.execute("SELECT request_id, status, cost_usd, tags FROM requests").fetchall() == [
        ("old-1", 200, None, None)
    ]
    con.close()
    sink = DuckDBSink(tmp_path / "old.duckdb", TelemetryConfig(flush_interval_s=30))
    tagged = ctx("new-1")
    tagged.tags = '{"team":"search"}'
    sink.record(tagged)
    asyncio.run(sink.aclose())
    assert rows(
        tmp_path / "old.duckdb", "SELECT request_id, tags FROM requests ORDER BY request_id"
    ) == [("new-1", '{"team":"search"}'), ("old-1", None)]
