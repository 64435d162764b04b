"""A real HTTP proxy on loopback for the egress tests: CONNECT tunnels (https upstreams)
and absolute-form forwarding (http upstreams), optional Basic credentials (407 without)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from types import TracebackType


class ConnectProxy:
    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.expected = ("Basic " + base64.b64encode(":".join(credentials).encode()).decode()
                         if credentials else None)  # fmt: skip
        self.tunnels: list[str] = []  # CONNECT authorities
        self.forwarded: list[str] = []  # absolute-form request targets
        self.refused = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ConnectProxy:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None
                        ) -> None:  # fmt: skip
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}  # fmt: skip
            if self.expected and headers.get("proxy-authorization") != self.expected:
                self.refused += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"content-length: 0\r\n\r\n")  # fmt: skip
                await writer.drain()
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                self.tunnels.append(target)
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await pipe_both(reader, writer, up_reader, up_writer)
                return
            self.forwarded.append(target)
            rest = target.split("://", 1)[1]
            authority, _, path = rest.partition("/")
            host, port = authority.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            kept = [line for line in lines[1:] if line and
                    not line.lower().startswith("proxy-authorization")]  # fmt: skip
            origin_form = f"{method} /{path} HTTP/1.1\r\n" + "".join(k + "\r\n" for k in kept)
            up_writer.write((origin_form + "\r\n").encode("latin-1"))
            await pipe_both(reader, writer, up_reader, up_writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def pipe_both(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:  # fmt: skip
    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
