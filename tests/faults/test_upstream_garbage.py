"""Upstream garbage is never relayed as success: a 200 that is not an OpenAI answer is a
502 `upstream_invalid_response`, a malformed stream event ends the stream with an error
event, and both say so in the request row; secrets an upstream echoes are masked."""

from __future__ import annotations

import logging
import random
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.faults.conftest import CHAT, UPSTREAM_KEY, gateway_on, request_rows
from tests.faults.raw_upstream import RawUpstream, json_answer, sse_answer

GOOD_CHUNK = (b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up",'
              b'"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}')  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"id": "x", "choices": [{"index": 0, "message": {"content": "trunc',
        b'{"id": "x", "choices": "not a list"}',
        b'{"id": "x", "choices": [1, 2]}',
        b'{"id": "x", "choices": [{"index": 0, "message": "text"}]}',
        b"[1, 2, 3]",
        b"\xff\xfe\x00garbage",
        b'{"error": {"message": "oops", "type": "server_error"}}',
        b"",
    ],
)
def test_whole_response_that_is_not_openai_is_502(tmp_path: Path, body: bytes) -> None:
    with RawUpstream(json_answer(body)) as up, gateway_on(up, tmp_path) as (_, client):
        r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_invalid_response"
    assert request_rows(tmp_path, "status, error_type") == [(502, "upstream_invalid_response")]


@pytest.mark.parametrize(
    "bad",
    [
        b"not json at all",
        b'{"id":"c1","choices":"nope"}',
        b'{"id":"c1","choices":[{"index":0,"delta":"text"}]}',
        b"\x00\x01\x02\xff",
        b'{"id":"c1","choices":[{"index":0,"delta":{"content":7}}]}',
        b"[]",
    ],
)
@pytest.mark.parametrize("model", ["m", "guarded"])  # guarded: through the output guardrails
def test_malformed_stream_event_ends_with_error_event(
    tmp_path: Path, bad: bytes, model: str
) -> None:
    events = [b"data: " + GOOD_CHUNK + b"\n\n", b"data: " + bad + b"\n\n", b"data: [DONE]\n\n"]
    with RawUpstream(sse_answer(events)) as up, gateway_on(up, tmp_path) as (_, client):
        body = {**CHAT, "model": model, "stream": True}
        r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    datas = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert orjson.loads(datas[0])["choices"][0]["delta"]["content"] == "Hel"  # the valid part
    assert orjson.loads(datas[-1])["error"]["code"] == "upstream_invalid_response"
    assert bad.decode("utf-8", "replace") not in r.text and "[DONE]" not in r.text
    assert request_rows(tmp_path, "status, error_type") == [(200, "upstream_invalid_response")]


def spelled(doc: object, style: str) -> bytes:
    if style == "compact":
        return orjson.dumps(doc)
    if style == "spaced":  # Python's json.dumps default separators
        import json

        return json.dumps(doc).encode()
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).replace(b"\n", b" ")  # one SSE line


def chunks(style: str) -> list[bytes]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up-m"}
    docs = [
        {
            **head,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}
            ],
        },
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {
            **head,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        },
    ]
    return [b"data: " + spelled(d, style) + b"\n\n" for d in docs] + [b"data: [DONE]\n\n"]


def whole(style: str) -> bytes:
    doc = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up-m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}  # fmt: skip
    return spelled(doc, style)


@pytest.mark.parametrize("style", ["compact", "spaced", "pretty"])
def test_stream_and_whole_rows_agree_for_every_json_spelling(tmp_path: Path, style: str) -> None:
    def answer(request: bytes, conn: object) -> None:
        script = (
            sse_answer(chunks(style)) if b'"stream":true' in request else json_answer(whole(style))
        )
        script(request, conn)  # type: ignore[arg-type]

    columns = "finish_reasons, input_tokens, output_tokens, response_model, error_type"
    with RawUpstream(answer) as up, gateway_on(up, tmp_path) as (_, client):
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        streamed = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert streamed.status_code == 200 and "data: [DONE]" in streamed.text
    plain, stream = request_rows(tmp_path, columns)
    assert plain == stream == ("stop", 5, 1, "up-m", None)


def test_escaped_key_spelling_is_read(tmp_path: Path) -> None:
    """`"finish\\u005freason"` is the same key to every JSON parser."""
    chunk = (b'{"id":"c","model":"up","choices":[{"index":0,"delta":{},'
             b'"finish\\u005freason":"length"}]}')  # fmt: skip
    events = [b"data: " + chunk + b"\n\n", b"data: [DONE]\n\n"]
    with RawUpstream(sse_answer(events)) as up, gateway_on(up, tmp_path) as (_, client):
        client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert request_rows(tmp_path, "finish_reasons") == [("length",)]


@pytest.mark.parametrize("stream", [False, True])
def test_a_redirect_is_not_an_answer(tmp_path: Path, stream: bool) -> None:
    redirect = b"HTTP/1.1 302 Found\r\nlocation: http://elsewhere/\r\ncontent-length: 0\r\n\r\n"
    with (
        RawUpstream(lambda _, conn: conn.sendall(redirect)) as up,
        gateway_on(up, tmp_path) as (_, client),
    ):
        r = client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_invalid_response"


def test_a_huge_or_decompression_bomb_answer_is_refused(tmp_path: Path) -> None:
    """Answers past the provider's max_response_bytes (1 MiB here), plain or gzip (10 MiB
    of zeros in ~10 KB), and a stream event that never ends: 502 / an error event, and
    the gateway does not buffer them whole."""
    import gzip

    bomb = gzip.compress(b"0" * (10 * 1024 * 1024))
    huge = b'{"id": "x", "choices": [{"index": 0, "message": {"content": "' + b"a" * 2_000_000

    def answer(request: bytes, conn: socket.socket) -> None:
        if b'"stream":true' in request:
            sse_answer([b"data: {" + b'"x": "' + b"a" * 65536] * 40, end=False)(request, conn)
            return
        if b"bomb" in request:
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(bomb), bomb))  # fmt: skip
            return
        json_answer(huge)(request, conn)

    with RawUpstream(answer) as up, gateway_on(up, tmp_path) as (_, client):
        for body in (CHAT, {**CHAT, "user": "bomb"}):
            r = client.post("/v1/chat/completions", json=body)
            assert r.status_code == 502, r.text[:200]
            assert r.json()["error"]["code"] == "upstream_invalid_response"
        r = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 502  # before any content: a plain error, not a broken stream
        assert r.json()["error"]["code"] == "upstream_invalid_response"


def test_upstream_error_echoing_the_key_is_masked(tmp_path: Path) -> None:
    echo = orjson.dumps({"error": {
        "message": f"Incorrect API key provided: {UPSTREAM_KEY}. You can find your key at ...",
        "type": "invalid_request_error", "code": "invalid_api_key", "param": None}})  # fmt: skip
    with (
        RawUpstream(json_answer(echo, "401 Unauthorized")) as up,
        gateway_on(up, tmp_path) as (_, client),
    ):
        r = client.post("/v1/chat/completions", json=CHAT)
        streamed = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 401 and streamed.status_code == 401
    for text in (r.text, streamed.text):
        assert UPSTREAM_KEY not in text and "Incorrect API key provided: ***" in text


def test_key_reflected_in_a_success_or_a_chunk_is_masked(tmp_path: Path) -> None:
    def answer(request: bytes, conn: object) -> None:
        text = f"your header was Bearer {UPSTREAM_KEY}"
        if b'"stream":true' in request:
            chunk = orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": text}}]})
            script = sse_answer([b"data: " + chunk + b"\n\n", b"data: [DONE]\n\n"])
        else:
            script = json_answer(orjson.dumps({"id": "c", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}}]}))  # fmt: skip
        script(request, conn)  # type: ignore[arg-type]

    with RawUpstream(answer) as up, gateway_on(up, tmp_path) as (_, client):
        plain = client.post("/v1/chat/completions", json=CHAT)
        streamed = client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    for r in (plain, streamed):
        assert r.status_code == 200 and UPSTREAM_KEY not in r.text and "Bearer ***" in r.text


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ("a=" + "x" * 600, None),  # over 512 characters
        (",".join(f"k{i}=v" for i in range(33)), None),  # over 32 members
        ("Upper=1", None),  # keys are lower case
        ("k=v,k=w", None),  # a key twice
        ("k=bad,value", None),
        ("vendor@sys=ok", "vendor@sys=ok"),
    ],
)
def test_only_a_valid_tracestate_is_forwarded(
    tmp_path: Path, sent: str, forwarded: str | None
) -> None:
    ok = orjson.dumps({"id": "c", "choices": [{"index": 0, "message": {"content": "x"}}]})
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with RawUpstream(json_answer(ok)) as up, gateway_on(up, tmp_path) as (_, client):
        client.post("/v1/chat/completions", json=CHAT,
                    headers={"traceparent": parent, "tracestate": sent})  # fmt: skip
        head = up.requests[-1].split(b"\r\n\r\n")[0].decode()
    states = [line.split(":", 1)[1].strip() for line in head.split("\r\n")
              if line.lower().startswith("tracestate:")]  # fmt: skip
    assert states == ([forwarded] if forwarded else [])


FUZZ_VALUES: list[object] = [None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"a": 1}, [{}],
                             "a" * 50, [None]]  # fmt: skip
WHOLE = {"id": "c", "object": "chat.completion", "model": "up", "choices": [{
    "index": 0, "message": {"role": "assistant", "content": "x", "tool_calls": [{
        "id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1,
    "prompt_tokens_details": {"cached_tokens": 0}}}  # fmt: skip
CHUNKS = [
    {"id": "c", "object": "chat.completion.chunk", "model": "up", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": "Hi jane@example.com"},
         "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "model": "up",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "c", "object": "chat.completion.chunk", "model": "up", "choices": [],
     "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
]  # fmt: skip


def mutate(rng: random.Random, doc: object, depth: int = 0) -> object:
    """One value somewhere in `doc` replaced by a value of another type."""
    keys: list[Any] = list(doc) if isinstance(doc, dict) else list(range(len(doc))) if isinstance(
        doc, list) else []  # fmt: skip
    if keys:
        key = rng.choice(keys)
        container: Any = doc
        if rng.random() < 0.5 and depth < 4:
            mutate(rng, container[key], depth + 1)
        else:
            container[key] = rng.choice(FUZZ_VALUES)
    return doc


def test_fuzzed_upstream_answers_are_relayed_or_refused_never_a_500(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Valid answers with one value of the wrong type somewhere (a usage count that is a
    string, a delta that is a list, ...), through output guardrails and accounting: a
    200 or a 502, streams that end with [DONE] or an error event, and no error logged."""
    rng = random.Random(3)

    def answer(request: bytes, conn: socket.socket) -> None:
        if b'"stream":true' in request:
            docs = orjson.loads(orjson.dumps(CHUNKS))
            mutate(rng, rng.choice(docs))
            events = [b"data: " + orjson.dumps(d) + b"\n\n" for d in docs]
            sse_answer([*events, b"data: [DONE]\n\n"])(request, conn)
        else:
            json_answer(orjson.dumps(mutate(rng, orjson.loads(orjson.dumps(WHOLE)))))(request, conn)

    with RawUpstream(answer) as up, gateway_on(up, tmp_path) as (_, client):
        for i in range(300):
            stream = i % 2 == 0
            body = {**CHAT, "model": ("m", "guarded")[i % 3 == 0], "stream": stream}
            r = client.post("/v1/chat/completions", json=body)
            assert r.status_code in (200, 502), r.text
            if stream and r.status_code == 200:
                last = [line for line in r.text.split("\n") if line.startswith("data: ")][-1]
                assert last == "data: [DONE]" or '"error"' in last, r.text
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
