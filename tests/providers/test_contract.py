"""The contract every provider must pass, run through a real gateway against the mock
upstream speaking that provider's wire format."""

from typing import Any

import httpx
import orjson
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream

PROVIDERS = {  # gateway model -> (upstream model the mock sees, upstream secret, auth header)
    "gpt": ("up-gpt", "sk-upstream-secret", "authorization"),
    "azure-gpt": ("my-deployment", "az-secret", "api-key"),
    "claude": ("claude-up", "sk-ant-secret", "x-api-key"),
}
MESSAGES = [{"role": "user", "content": "Hello"}]
pytestmark = pytest.mark.parametrize("model", list(PROVIDERS))


def sse_payloads(response: httpx.Response) -> list[Any]:
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    return [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]


def test_non_stream_completion(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    r = client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        **body["choices"][0]["message"],
        "role": "assistant",
        "content": "Hello! How can I help you today?",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_stream_text_and_single_usage_chunk(
    client: httpx.Client, mock: MockUpstream, model: str
) -> None:
    for include in (False, True):
        body = {"model": model, "messages": MESSAGES, "stream": True}
        if include:
            body["stream_options"] = {"include_usage": True}
        chunks = sse_payloads(client.post("/v1/chat/completions", json=body))
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == "Hello! How can I help you today?"
        finishes = [
            c["choices"][0]["finish_reason"]
            for c in chunks
            if c["choices"] and c["choices"][0]["finish_reason"]
        ]
        assert finishes == ["stop"]
        usage_chunks = [c for c in chunks if c.get("usage")]
        assert len(usage_chunks) == (1 if include else 0)
        if include:
            assert usage_chunks[0]["choices"] == []
            assert chunks[-1] is usage_chunks[0]


def test_stream_and_non_stream_report_the_same_usage(
    client: httpx.Client, mock: MockUpstream, model: str
) -> None:
    whole = client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES}).json()
    streamed = sse_payloads(
        client.post(
            "/v1/chat/completions",
            json={
                "model": model,
                "messages": MESSAGES,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    )
    assert streamed[-1]["usage"] == whole["usage"]


def test_tool_calls(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    upstream = PROVIDERS[model][0]
    mock.behave(upstream, Behavior(tool_call={"name": "weather", "arguments": {"city": "Paris"}}))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    r = client.post(
        "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "tools": tools}
    )
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}


@pytest.mark.parametrize("status", [400, 429, 500, 503])
def test_upstream_errors_keep_status_and_openai_shape(
    client: httpx.Client, mock: MockUpstream, model: str, status: int
) -> None:
    mock.behave(PROVIDERS[model][0], Behavior(status=status))
    r = client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["message"] == "mock failure"
    assert {"message", "type", "param", "code"} <= set(err)


def test_credentials_and_ids_sent_upstream(
    client: httpx.Client, mock: MockUpstream, model: str
) -> None:
    upstream, secret, header = PROVIDERS[model]
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={
            "authorization": "Bearer client-key",
            "x-request-id": "req-123",
            "traceparent": traceparent,
        },
    )
    assert r.headers["x-request-id"] == "req-123"
    seen = mock.requests[-1]
    assert seen.headers[header] == (f"Bearer {secret}" if header == "authorization" else secret)
    assert "client-key" not in str(seen.headers)
    assert seen.headers["x-request-id"] == "req-123"
    # the upstream continues the client's trace under our CLIENT span
    version, trace_id, parent, flags = seen.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", traceparent[3:35], "01")
    assert parent != traceparent[36:52] and len(parent) == 16
    assert upstream in (
        seen.body.get("model"),
        seen.path.split("/")[3] if "deployments" in seen.path else None,
    )


def test_stream_cut_midway_ends_with_error_event(
    client: httpx.Client, mock: MockUpstream, model: str
) -> None:
    # cut after the first content event (Anthropic's comes after message_start,
    # content_block_start and a ping): the stream has committed
    mock.behave(PROVIDERS[model][0], Behavior(cut_after=5 if model == "claude" else 3))
    r = client.post(
        "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True}
    )
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e]
    last = orjson.loads(events[-1].removeprefix("data: "))
    assert last["error"]["code"] == "upstream_unreachable"
    assert "data: [DONE]" not in events


def test_stream_cut_before_any_content_is_a_plain_502(
    client: httpx.Client, mock: MockUpstream, model: str
) -> None:
    mock.behave(PROVIDERS[model][0], Behavior(cut_after=1))
    r = client.post(
        "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True}
    )
    assert r.status_code == 502  # nothing had reached the client: no broken stream
    assert r.json()["error"]["code"] == "upstream_unreachable"


def test_upstream_timeout_is_504(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    mock.behave(PROVIDERS[model][0], Behavior(delay_s=1.5))
    r = client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"


def test_connection_reset_is_502(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    mock.behave(PROVIDERS[model][0], Behavior(reset=True))
    r = client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_unreachable"
