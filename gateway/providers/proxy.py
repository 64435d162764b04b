"""Opening a connection to an upstream: directly, or (egress) through an HTTP proxy, a
provider's `proxy_url` or (`proxy_from_env: true`) HTTPS_PROXY / HTTP_PROXY and NO_PROXY as
urllib reads them. An https upstream is reached through a CONNECT tunnel (TLS end to end,
the proxy sees only the host); a plain http upstream is sent to the proxy in absolute
form. Credentials in the proxy URL's userinfo (`http://user:pass@proxy:3128`, from
`${ENV}`) go as Proxy-Authorization: Basic."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import httpx

MAX_HEAD = 16 * 1024
P = TypeVar("P", bound=asyncio.BaseProtocol)


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = None  # the Proxy-Authorization header's value

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an egress proxy is an http:// URL (got {url!r})")
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(parts.hostname, parts.port or 80, auth)


def proxy_for(scheme: str, host: str, proxy_url: str | None, from_env: bool) -> Proxy | None:
    """The proxy an upstream is reached through, or None (direct)."""
    if proxy_url is not None:
        return Proxy.parse(proxy_url)
    if not from_env:
        return None
    proxies = urllib.request.getproxies_environment()
    if urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return None
    url = proxies.get(scheme)
    return Proxy.parse(url) if url else None


async def handshake(loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: Proxy,
                    head: str, within_s: float | None) -> bytes:  # fmt: skip
    """Send the CONNECT request; the proxy's answer head."""
    try:
        async with asyncio.timeout(within_s):
            await loop.sock_connect(sock, (proxy.host, proxy.port))
            await loop.sock_sendall(sock, (head + "\r\n").encode("latin-1"))
            answer = b""
            while b"\r\n\r\n" not in answer:
                data = await loop.sock_recv(sock, 4096)
                if not data or len(answer) > MAX_HEAD:
                    raise httpx.ProxyError(f"the proxy {proxy.host} closed the tunnel request")
                answer += data
            return answer
    except TimeoutError:
        raise httpx.ConnectTimeout(f"the proxy {proxy.host} did not open a tunnel in time") \
            from None  # fmt: skip
    except OSError as exc:
        raise httpx.ConnectError(f"proxy {proxy.host}: {exc}") from None


async def tunnel(proxy: Proxy, host: str, port: int, within_s: float | None) -> socket.socket:
    """A socket connected through the proxy to host:port (CONNECT answered 2xx)."""
    loop = asyncio.get_running_loop()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.authorization:
        head += f"Proxy-Authorization: {proxy.authorization}\r\n"
    sock = socket.socket(socket.AF_INET6 if ":" in proxy.host else socket.AF_INET,
                         socket.SOCK_STREAM)  # fmt: skip
    sock.setblocking(False)
    opened = False
    try:
        answer = await handshake(loop, sock, proxy, head, within_s)
        line = answer.split(b"\r\n", 1)[0]
        status = line.split(b" ")
        if len(status) < 2 or not status[1].startswith(b"2"):
            raise httpx.ProxyError(f"the proxy refused the tunnel: {line!r}")
        opened = True
    finally:
        if not opened:  # a refusal, a timeout or a cancel: the socket is not leaked
            sock.close()
    return sock


async def open_connection(factory: Callable[[], P], host: str, port: int,
                          tls: ssl.SSLContext | None, proxy: Proxy | None, forward: bool,
                          within_s: float | None) -> P:  # fmt: skip
    """A connection to host:port: direct; through a CONNECT tunnel (`proxy`, https); or to
    the proxy itself (`forward`: it takes absolute-form requests). Failures are httpx's."""
    loop = asyncio.get_running_loop()
    name = host if tls is not None else None
    try:
        async with asyncio.timeout(within_s):
            if proxy is not None and not forward:
                sock = await tunnel(proxy, host, port, within_s)
                _, conn = await loop.create_connection(factory, sock=sock, ssl=tls,
                                                       server_hostname=name)  # fmt: skip
                return conn
            if proxy is not None:
                host, port = proxy.host, proxy.port
            _, conn = await loop.create_connection(factory, host, port, ssl=tls,
                                                   server_hostname=name)  # fmt: skip
            return conn
    except TimeoutError:
        raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
    except OSError as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
