"""A misbehaving upstream on a raw loopback socket: it reads one HTTP/1.1 request and
answers with exactly the bytes a test scripted (garbage, broken framing, half an answer),
so that nothing between the test and the gateway tidies the fault away."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Script = Callable[[bytes, socket.socket], None]  # (request bytes, connection)


def read_request(conn: socket.socket) -> bytes:
    """Headers and a content-length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(65536)
        if not part:
            return data
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        part = conn.recv(65536)
        if not part:
            break
        body += part
    return head + b"\r\n\r\n" + body


def json_answer(body: bytes, status: str = "200 OK") -> Script:
    def answer(_: bytes, conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )

    return answer


def sse_answer(events: list[bytes], interval_s: float = 0.0, end: bool = True) -> Script:
    """`events` are whole SSE event texts (`data: ...\\n\\n`), sent chunked."""

    def answer(_: bytes, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")  # fmt: skip
        for event in events:
            conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            if interval_s:
                time.sleep(interval_s)
        if end:
            conn.sendall(b"0\r\n\r\n")

    return answer


@dataclass
class RawUpstream:
    script: Script = field(default=json_answer(b"{}"))
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                while request := read_request(conn):
                    self.requests.append(request)
                    self.script(request, conn)
            except OSError:
                pass
