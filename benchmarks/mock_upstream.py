"""A mock LLM upstream on a real loopback socket, speaking OpenAI's and Anthropic's exact
wire formats (SSE included), that can fail on command. Used by the tests and benchmarks.

    mock = MockUpstream(); mock.start()            # background thread, own event loop
    mock.behave("gpt-x", Behavior(status=429))     # per upstream model
    mock.requests[-1].body                         # what the gateway sent
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Behavior:
    text: str = "Hello! How can I help you today?"
    status: int = 200
    error: dict[str, Any] | None = None  # body for status >= 400
    delay_s: float = 0.0  # before the response starts
    chunk_interval_s: float = 0.0
    cut_after: int | None = None  # streams: drop the connection after N chunks
    reset: bool = False  # close the connection without answering
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 9, "completion_tokens": 8}
    )
    tool_call: dict[str, Any] | None = None  # {"name":..., "arguments": {...}}
    no_usage: bool = False  # an upstream that reports no token usage at all
    headers: dict[str, str] = field(default_factory=dict)  # on every response (errors too)
    pause_at: int | None = None  # streams: before event N (0: right after the headers)...
    pause_s: float = 0.0  # ...wait this long
    finish: str | None = None  # the finish (or Anthropic stop) reason to report instead


@dataclass
class Seen:
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


class MockUpstream:
    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.behaviors: dict[str, Behavior] = {}
        self.requests: list[Seen] = []
        self.disconnects: list[str] = []  # models whose stream the client closed
        self.webhook_texts: list[str] = []
        self.record = True
        # report cached prompt tokens for a prefix (system messages + tools) seen before,
        # as providers' prompt caches do (per upstream: what affinity keeps)
        self.prefix_cache = False
        self.prefixes: set[bytes] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- control

    def behave(self, model: str, behavior: Behavior) -> None:
        self.behaviors[model] = behavior

    def reset_state(self) -> None:
        self.prefixes.clear()
        self.behaviors.clear()
        self.requests.clear()
        self.disconnects.clear()
        self.webhook_texts.clear()

    def start(self) -> MockUpstream:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        self._loop.run_until_complete(site.start())
        ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.azure_chat)
        app.router.add_post("/guardrail", self.guardrail)
        app.router.add_post("/hook", self.hook)
        return app

    # ---------------------------------------------------------------- handlers

    async def _begin(
        self, request: web.Request, model: str | None = None
    ) -> tuple[dict[str, Any], Behavior]:
        body = orjson.loads(await request.read())
        if self.record:
            self.requests.append(
                Seen(
                    request.path,
                    request.query_string,
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                )
            )
        behavior = self.behaviors.get(model or str(body.get("model")), DEFAULT)
        if behavior.delay_s:
            await asyncio.sleep(behavior.delay_s)
        if behavior.reset and request.transport is not None:
            request.transport.abort()
            raise ConnectionResetError
        return body, behavior

    def _error(self, behavior: Behavior, anthropic: bool = False) -> web.Response:
        if anthropic:
            doc = behavior.error or {
                "type": "error",
                "error": {"type": "api_error", "message": "mock failure"},
            }
        else:
            doc = behavior.error or {
                "error": {
                    "message": "mock failure",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        return web.Response(
            body=orjson.dumps(doc), status=behavior.status, content_type="application/json",
            headers=behavior.headers,
        )  # fmt: skip

    async def hook(self, request: web.Request) -> web.StreamResponse:
        """Any webhook (budget alerts...): recorded, answered 204."""
        await self._begin(request, model="")
        return web.Response(status=204)

    async def guardrail(self, request: web.Request) -> web.StreamResponse:
        """A guardrail webhook: flags the word "forbidden"; "explode" fails, "stall" hangs."""
        text = str((await request.json())["text"])
        self.webhook_texts.append(text)
        if "explode" in text:
            return web.Response(status=500, text="boom")
        if "stall" in text:
            await asyncio.sleep(3)
        start = text.find("forbidden")
        if start < 0:
            return web.json_response({"flagged": False})
        return web.json_response(
            {
                "flagged": True,
                "findings": [{"start": start, "end": start + 9, "entity": "FORBIDDEN"}],
            }
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, behavior = await self._begin(request)
        return await self._chat(request, body, behavior)

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        body, behavior = await self._begin(request, request.match_info["deployment"])
        return await self._chat(
            request, {**body, "model": request.match_info["deployment"]}, behavior
        )

    async def _chat(
        self, request: web.Request, body: dict[str, Any], b: Behavior
    ) -> web.StreamResponse:
        if b.status >= 400:
            return self._error(b)
        model = str(body["model"])
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._sse(request, model, openai_chunks(model, b, usage), b)
        if b is DEFAULT and model == DEFAULT_MODEL and not self.prefix_cache:
            return web.Response(body=DEFAULT_BODY, content_type="application/json")
        doc = openai_completion(model, b)
        if self.prefix_cache and "usage" in doc:
            prefix = orjson.dumps([[m for m in body.get("messages", [])
                                    if m.get("role") == "system"], body.get("tools")])  # fmt: skip
            seen = prefix in self.prefixes
            self.prefixes.add(prefix)
            doc["usage"]["prompt_tokens_details"] = {
                "cached_tokens": doc["usage"]["prompt_tokens"] if seen else 0}  # fmt: skip
        return web.Response(
            body=orjson.dumps(doc), content_type="application/json",
            headers=b.headers,
        )  # fmt: skip

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body, b = await self._begin(request)
        if b.status >= 400:
            return self._error(b)
        doc = {
            "id": "cmpl-mock",
            "object": "text_completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [{"index": 0, "text": b.text, "logprobs": None, "finish_reason": "stop"}],
            "usage": openai_usage(b),
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, b = await self._begin(request)
        if b.status >= 400:
            return self._error(b)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3]}
            for i in range(len(inputs))
        ]
        doc = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body, b = await self._begin(request)
        if b.status >= 400:
            return self._error(b, anthropic=True)
        model = str(body["model"])
        if body.get("stream"):
            return await self._sse(request, model, anthropic_events(model, b), b)
        return web.Response(
            body=orjson.dumps(anthropic_message(model, b)), content_type="application/json"
        )

    async def _sse(
        self, request: web.Request, model: str, events: list[bytes], b: Behavior
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache",
                     **b.headers}
        )  # fmt: skip
        await response.prepare(request)
        try:
            for i, event in enumerate(events):
                if b.cut_after is not None and i >= b.cut_after:
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if i and b.chunk_interval_s:
                    await asyncio.sleep(b.chunk_interval_s)
                if i == b.pause_at:
                    await asyncio.sleep(b.pause_s)
                await response.write(event)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects.append(model)
            return response
        await response.write_eof()
        return response


# -------------------------------------------------------------------- wire format

CREATED = 1_700_000_000
DEFAULT = Behavior()
DEFAULT_MODEL = "mock-fast"


def openai_usage(b: Behavior) -> dict[str, Any]:
    u = dict(b.usage)
    u.setdefault("prompt_tokens", 0)
    u.setdefault("completion_tokens", 0)
    u["total_tokens"] = u["prompt_tokens"] + u["completion_tokens"]
    return u


def openai_completion(model: str, b: Behavior) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": b.text, "refusal": None}
    finish = "stop"
    if b.tool_call:
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": b.tool_call["name"],
                        "arguments": orjson.dumps(b.tool_call["arguments"]).decode(),
                    },
                }
            ],
        }
        finish = "tool_calls"
    doc = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": b.finish or finish}
        ],
        "usage": openai_usage(b),
        "system_fingerprint": "fp_mock",
    }
    if b.no_usage:
        del doc["usage"]
    return doc


def _sse(doc: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(doc) + b"\n\n"


def openai_chunks(model: str, b: Behavior, include_usage: bool) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    words = b.text.split(" ")
    out = [_sse(chunk({"role": "assistant", "content": ""}))]
    out += [_sse(chunk({"content": w if i == 0 else " " + w})) for i, w in enumerate(words)]
    out.append(_sse(chunk({}, b.finish or "stop")))
    if include_usage and not b.no_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = openai_usage(b)
        out.append(_sse(last))
    out.append(b"data: [DONE]\n\n")
    return out


def anthropic_message(model: str, b: Behavior) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": b.text}]
    stop = "end_turn"
    if b.tool_call:
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": b.tool_call["name"],
                "input": b.tool_call["arguments"],
            }
        )
        stop = "tool_use"
    return {
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": b.finish or stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 9,
            "output_tokens": 8,
            "cache_read_input_tokens": 3,
            "cache_creation_input_tokens": 2,
        },
    }


def anthropic_events(model: str, b: Behavior) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 9,
                "output_tokens": 1,
                "cache_read_input_tokens": 3,
                "cache_creation_input_tokens": 2,
            },
        },
    }
    out = [
        _sse(start, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    for i, w in enumerate(b.text.split(" ")):
        delta = {"type": "text_delta", "text": w if i == 0 else " " + w}
        out.append(
            _sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
        )
    out.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    stop = "end_turn"
    if b.tool_call:
        stop = "tool_use"
        tool = {"type": "tool_use", "id": "toolu_1", "name": b.tool_call["name"], "input": {}}
        out.append(
            _sse(
                {"type": "content_block_start", "index": 1, "content_block": tool},
                "content_block_start",
            )
        )
        args = orjson.dumps(b.tool_call["arguments"]).decode()
        for part in (args[: len(args) // 2], args[len(args) // 2 :]):
            delta = {"type": "input_json_delta", "partial_json": part}
            out.append(
                _sse(
                    {"type": "content_block_delta", "index": 1, "delta": delta},
                    "content_block_delta",
                )
            )
        out.append(_sse({"type": "content_block_stop", "index": 1}, "content_block_stop"))
    out.append(
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 8},
            },
            "message_delta",
        )
    )
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return out


DEFAULT_BODY = orjson.dumps(openai_completion(DEFAULT_MODEL, DEFAULT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="mock OpenAI/Anthropic upstream")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--stream-chunks", type=int, default=20,
                        help="content chunks of model mock-stream")  # fmt: skip
    parser.add_argument("--chunk-interval-ms", type=float, default=10.0,
                        help="pause between mock-stream's chunks")  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="fixed delay before model mock-slow answers")  # fmt: skip
    args = parser.parse_args()
    mock = MockUpstream(args.port)
    mock.record = False
    vocabulary = [
        "the",
        "answer",
        "is",
        "that",
        "streams",
        "should",
        "flow",
        "as",
        "soon",
        "as",
        "each",
        "word",
        "is",
        "ready",
    ]
    words = " ".join(vocabulary[i % len(vocabulary)] for i in range(args.stream_chunks))
    mock.behave("mock-stream", Behavior(text=words, chunk_interval_s=args.chunk_interval_ms / 1e3))
    mock.behave("mock-slow", Behavior(delay_s=args.latency_ms / 1e3))
    mock.start()
    print(f"mock upstream on {mock.base_url}", flush=True)
    while True:
        time.sleep(3600)
