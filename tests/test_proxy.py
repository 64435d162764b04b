"""The request path end to end over real sockets: forwarding, errors, routing, streaming."""

import socket
import time

import httpx
import orjson
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.app import Settings
from tests.conftest import GatewayServer, PolicyWriter

CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}]}


def test_every_field_is_forwarded_untouched_except_model(
    client: httpx.Client, mock: MockUpstream
) -> None:
    body = {
        "messages": [{"role": "user", "content": "Hi"}],
        "model": "gpt",
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "n": 2,
        "seed": 7,
        "stop": ["x"],
        "parallel_tool_calls": False,
        "metadata": {"a": "b"},
        "some_future_field": {"nested": [1, 2.5, None, "é"]},
    }
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = mock.requests[-1].body
    assert sent == {**body, "model": "up-gpt"}
    assert list(sent) == list(body)  # key order kept


def test_response_is_relayed_byte_for_byte(client: httpx.Client, mock: MockUpstream) -> None:
    r = client.post("/v1/chat/completions", json=CHAT)
    assert orjson.loads(r.content)["system_fingerprint"] == "fp_mock"
    assert orjson.loads(r.content)["model"] == "up-gpt"


def test_completions_and_embeddings(client: httpx.Client, mock: MockUpstream) -> None:
    r = client.post("/v1/completions", json={"model": "gpt", "prompt": "Say hi", "max_tokens": 5})
    assert r.json()["choices"][0]["text"] == "Hello! How can I help you today?"
    assert mock.requests[-1].path == "/v1/completions"
    r = client.post("/v1/embeddings", json={"model": "gpt", "input": ["a", "b"]})
    assert [d["index"] for d in r.json()["data"]] == [0, 1]
    assert mock.requests[-1].body == {"model": "up-gpt", "input": ["a", "b"]}


def test_operation_the_provider_lacks_is_400(client: httpx.Client) -> None:
    r = client.post("/v1/embeddings", json={"model": "claude", "input": "a"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unsupported_operation"


def test_models_list_and_get(client: httpx.Client) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    assert {m["id"] for m in listed["data"]} == {"gpt", "azure-gpt", "claude", "dead"}
    assert client.get("/v1/models/claude").json()["owned_by"] == "claude"
    r = client.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_health_and_ready(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"


def test_request_id_is_echoed_generated_and_sanitised(
    client: httpx.Client, mock: MockUpstream
) -> None:
    r = client.post("/v1/chat/completions", json=CHAT)
    generated = r.headers["x-request-id"]
    assert len(generated) == 32 and mock.requests[-1].headers["x-request-id"] == generated
    r = client.get("/nowhere", headers={"x-request-id": "abc-1"})
    assert r.headers["x-request-id"] == "abc-1"
    r = client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "invalid_request",
        ),
        (
            {"content": b"[1,2]", "headers": {"content-type": "application/json"}},
            400,
            "invalid_request",
        ),
        (
            {"json": {"messages": [{"role": "user", "content": "x"}]}},
            400,
            "missing_required_parameter",
        ),
        ({"json": {"model": "gpt"}}, 400, "missing_required_parameter"),
        ({"json": {"model": "gpt", "messages": []}}, 400, "empty_array"),
        ({"json": {"model": "gpt", "messages": ["hi"]}}, 400, "invalid_type"),
        ({"json": {**CHAT, "stream": "yes"}}, 400, "invalid_type"),
        ({"json": {**CHAT, "stream_options": {"include_usage": True}}}, 400, "invalid_request"),
        ({"json": {**CHAT, "model": "gpt-nope"}}, 404, "model_not_found"),
        (
            {
                "content": b"model=gpt",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            415,
            "unsupported_media_type",
        ),
    ],
)
def test_bad_requests_get_openai_errors(
    client: httpx.Client, kwargs: dict[str, object], status: int, code: str
) -> None:
    r = client.post("/v1/chat/completions", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == code
    assert "Traceback" not in r.text


def test_unknown_route_and_wrong_method_are_json(client: httpx.Client) -> None:
    r = client.post("/v1/nothing", json={})
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = client.get("/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "POST" and "x-request-id" in r.headers
    assert int(r.headers["content-length"]) == len(r.content)


def test_unreachable_upstream_is_502(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={**CHAT, "model": "dead"})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_unreachable"
    assert "127.0.0.1" in r.json()["error"]["message"]


def test_unexpected_exception_is_a_json_500_without_trace(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("gateway.pipeline.guard_input", boom)
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "api_error"
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert r.headers["x-request-id"]


def test_stream_chunks_are_not_buffered(client: httpx.Client, mock: MockUpstream) -> None:
    mock.behave("up-gpt", Behavior(chunk_interval_s=0.15))  # 10 events: ~1.35 s in all
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
        arrivals = [time.perf_counter() - started for _ in r.iter_raw()]
    assert arrivals[0] < 0.5 < arrivals[-1]
    assert len(arrivals) >= 5


def test_stream_that_stalls_ends_with_a_timeout_event(
    client: httpx.Client, mock: MockUpstream
) -> None:
    # after its first content chunk (the stream has committed); the provider's timeout_s is 1
    mock.behave("up-gpt", Behavior(pause_at=3, pause_s=1.5))
    r = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    events = [e for e in r.text.split("\n\n") if e]
    assert orjson.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"
    assert orjson.loads(events[-1][6:])["error"]["code"] == "upstream_timeout"


def test_stream_that_stalls_before_any_content_is_a_plain_error(
    client: httpx.Client, mock: MockUpstream
) -> None:
    """Nothing reached the client (the role preamble is held until content comes), so
    the failure is an HTTP error, not a stream that starts and breaks."""
    mock.behave("up-gpt", Behavior(pause_at=1, pause_s=1.5))
    r = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert r.headers["x-gateway-attempts"] == "1"


def test_client_disconnect_cancels_the_upstream_request(
    gateway: GatewayServer, mock: MockUpstream
) -> None:
    mock.behave("up-gpt", Behavior(chunk_interval_s=0.3, text="a b c d e f g h i j k l"))
    body = orjson.dumps({**CHAT, "stream": True})
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"data:" not in received:
            received += sock.recv(65536)
        assert mock.disconnects == []
    deadline = time.monotonic() + 2.0  # the mock notices at its next write, 0.3 s later
    while "up-gpt" not in mock.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mock.disconnects == ["up-gpt"]


def test_fallbacks_on_upstream_failure_only(write_policy: PolicyWriter, mock: MockUpstream) -> None:
    models = {
        "primary": ("mock", "up-primary"),
        "backup": ("claude", "up-backup"),
        "dead": ("dead", "x"),
    }
    path = write_policy(models, fallbacks={"primary": ["backup"], "dead": ["primary"]})
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url) as c,
    ):
        mock.behave("up-primary", Behavior(status=503))
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "primary"})
        assert r.status_code == 200 and r.json()["model"] == "up-backup"
        assert [s.path for s in mock.requests] == ["/v1/chat/completions", "/v1/messages"]

        mock.behave("up-primary", Behavior(status=400))  # the client's fault: no fallback
        assert c.post("/v1/chat/completions", json={**CHAT, "model": "primary"}).status_code == 400

        mock.behave("up-primary", Behavior())  # unreachable first target: the next one serves
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "dead", "stream": True})
        assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")

        mock.behave("up-backup", Behavior(status=529))
        mock.behave("up-primary", Behavior(status=500))
        r = c.post("/v1/chat/completions", json={**CHAT, "model": "primary"})
        assert r.status_code == 529  # the last failure is what the client sees


def test_body_limit_is_413(write_policy: PolicyWriter) -> None:
    path = write_policy(extra="server:\n  max_body_bytes: 2048\n")
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url) as c,
    ):
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4000}]}
        r = c.post("/v1/chat/completions", json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        chunked = c.post(
            "/v1/chat/completions",
            content=iter([orjson.dumps(big)]),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413


def test_gateway_keys(write_policy: PolicyWriter, mock: MockUpstream) -> None:
    from gateway.auth import hash_key

    path = write_policy(
        extra=f"auth:\n  keys:\n    - id: team-a\n      sha256: {hash_key('gw-key-a')}\n"
    )
    with (
        GatewayServer(Settings(policy_path=str(path), watch_policy=False)) as gw,
        httpx.Client(base_url=gw.base_url) as c,
    ):
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 401
        assert c.get("/v1/models").status_code == 401
        r = c.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = c.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer gw-key-a"})
        assert r.status_code == 200
        assert mock.requests[-1].headers["authorization"] == "Bearer sk-upstream-secret"
        assert c.get("/healthz").status_code == 200  # probes need no key
