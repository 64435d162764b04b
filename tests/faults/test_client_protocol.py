"""Clients that break the protocol, over raw sockets: a body cut off mid-way, headers or a
body trickled forever, more connections than allowed, an HTTP/1.0 client asking for a
stream. None of them costs a traceback, a 500 row or a file descriptor for long."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from pathlib import Path

import orjson
import pytest

from tests.faults.conftest import CHAT, gateway_on, request_rows
from tests.faults.raw_upstream import RawUpstream, json_answer, sse_answer

OK = orjson.dumps({"id": "c", "object": "chat.completion", "model": "up",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"},
                                "finish_reason": "stop"}]})  # fmt: skip
LIMITS = "server:\n  header_timeout_s: 0.5\n  body_timeout_s: 0.5\n  max_connections: 20\n"


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while part := sock.recv(65536):
        data += part
    return data


def test_disconnect_while_sending_the_body_is_499_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path) as (gw, _):
        sock = connect(gw.port)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                     b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
                     b'{"model": "m", "mess')  # fmt: skip
        time.sleep(0.2)
        sock.close()
        time.sleep(0.3)
    assert request_rows(tmp_path, "status, error_type, client_disconnected") == [
        (499, "client_disconnected", True)
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not up.requests  # nothing reached the upstream


def test_trickled_headers_are_cut_off(tmp_path: Path) -> None:
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path, LIMITS) as (gw, _):
        socks = [connect(gw.port) for _ in range(10)]
        for sock in socks:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        idle = connect(gw.port)  # opens and sends nothing at all
        started = time.monotonic()
        answers = [read_all(s) for s in [*socks, idle]]
        assert time.monotonic() - started < 3
        for sock in [*socks, idle]:
            sock.close()
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0]
        head, _, body = answers[0].partition(b"\r\n\r\n")
        assert f"content-length: {len(body)}".encode() in head  # framed right
        assert orjson.loads(body)["error"]["code"] == "request_timeout"
        assert gw.app.state.reloader.state.connection_faults["header_timeout"] == 11


def test_trickled_body_is_408(tmp_path: Path) -> None:
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path, LIMITS) as (gw, _):
        sock = connect(gw.port)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                     b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{")  # fmt: skip
        for _ in range(3):
            time.sleep(0.25)
            try:
                sock.sendall(b" ")
            except OSError:
                break
        answer = sock.recv(65536)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert request_rows(tmp_path, "status") == [(408,)]


def test_connections_past_the_limit_are_refused(tmp_path: Path) -> None:
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path, LIMITS) as (gw, client):
        held = [connect(gw.port) for _ in range(20)]
        time.sleep(0.1)
        extra = connect(gw.port)
        with contextlib.suppress(ConnectionResetError):  # aborted: as good as closed
            assert extra.recv(10) == b""  # closed at once
        extra.close()
        for sock in held:
            sock.close()
        time.sleep(0.1)
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert gw.app.state.reloader.state.connection_faults["refused"] >= 1
        text = client.get("/metrics").text
        assert 'gateway_connection_faults_total{gateway_fault="refused"}' in text


def test_http10_stream_is_close_delimited(tmp_path: Path) -> None:
    chunk = orjson.dumps({"id": "c", "model": "up", "choices": [
        {"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]})  # fmt: skip
    events = [b"data: " + chunk + b"\n\n", b"data: [DONE]\n\n"]
    with RawUpstream(sse_answer(events)) as up, gateway_on(up, tmp_path) as (gw, _):
        body = orjson.dumps({**CHAT, "stream": True})
        for version in (b"1.0", b"1.1"):
            sock = connect(gw.port)
            sock.sendall(b"POST /v1/chat/completions HTTP/%s\r\nhost: x\r\nconnection: close\r\n"
                         b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (version, len(body), body))  # fmt: skip
            head, _, rest = read_all(sock).partition(b"\r\n\r\n")
            sock.close()
            headers = head.lower()
            if version == b"1.0":
                assert b"transfer-encoding" not in headers and b"content-length" not in headers
                assert b"connection: close" in headers
                assert rest.startswith(b"data: ") and rest.endswith(b"data: [DONE]\n\n")
            else:
                assert b"transfer-encoding: chunked" in headers


BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
GOOD = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY))  # fmt: skip
MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"\x00\x01\x02\r\n\r\n",
    b"POST / HTTP/9.9\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
    b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx: " + b"a" * 200_000 + b"\r\n\r\n",
    b"POST /v1/%00/x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY),
    GOOD * 3,  # pipelined, then the client half-closes
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    b"content-length: 4\r\n\r\n\xff\xfe\xfd\xfc",
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xff\xfe\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY),
    b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n",
]


def exchange(port: int, data: bytes) -> bytes:
    sock = connect(port)
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)
    except OSError:
        return b""
    finally:
        sock.close()


def test_malformed_http_never_costs_a_500_or_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import random

    rng = random.Random(5)
    cases = list(MALFORMED)
    for _ in range(60):  # GOOD with a few bytes flipped
        flipped = bytearray(GOOD)
        for _ in range(rng.randint(1, 6)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        cases.append(bytes(flipped))
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path) as (gw, client):
        for case in cases:
            answer = exchange(gw.port, case)
            assert b" 500 " not in answer.split(b"\r\n", 1)[0], (case[:80], answer[:200])
        time.sleep(0.3)
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
