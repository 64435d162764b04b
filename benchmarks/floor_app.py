"""The floor under any Python gateway here: a bare ASGI app on uvicorn that forwards the
body to the upstream with raw aiohttp and relays the answer - whole, or for an SSE stream
each piece as it arrives - with no routing, no parsing, no telemetry. The suite and
`proxy_overhead --floor` measure it beside the gateway in the same run.

    python -m benchmarks.floor_app PORT UPSTREAM_PORT
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn


class Floor:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if self.session is not None:
                await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.session = self.session or aiohttp.ClientSession()
        headers = {"content-type": "application/json"}
        async with self.session.post(
            self.upstream + scope["path"], data=body, headers=headers
        ) as r:
            kind = r.headers["content-type"]
            start = {"type": "http.response.start", "status": r.status,
                     "headers": [(b"content-type", kind.encode())]}  # fmt: skip
            if not kind.startswith("text/event-stream"):
                data = await r.read()
                await send(start)
                await send({"type": "http.response.body", "body": data})
                return
            await send(start)
            async for piece in r.content.iter_any():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    app = Floor(f"http://127.0.0.1:{upstream_port}")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
