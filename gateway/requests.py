"""Reading a client's request: size limit, content type, JSON, required fields."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from gateway.context import RequestContext
from gateway.errors import (
    ClientClosedRequest,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from gateway.policy.models import ServerConfig
from gateway.prompts import is_prompt_ref
from gateway.providers.base import Operation, UpstreamRequest
from gateway.validation import check_depth, check_fields

SPAN_PARAMS = ("max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
               "frequency_penalty", "presence_penalty", "seed", "n", "stop")  # fmt: skip
REQUIRED: dict[Operation, tuple[str, ...]] = {
    "chat": ("model", "messages"),
    "completions": ("model", "prompt"),
    "embeddings": ("model", "input"),
}


@dataclass(slots=True)
class ParsedRequest:
    operation: Operation
    body: dict[str, Any]
    model: str
    stream: bool

    def upstream_request(self, upstream_model: str, headers: dict[str, str],
                         connect_s: float | None = None) -> UpstreamRequest:  # fmt: skip
        """The body as sent, with only `model` rewritten (key order kept). Streams also
        ask for usage, which the relay strips again unless the client asked for it."""
        body = {**self.body, "model": upstream_model}
        if self.stream and self.operation != "embeddings":
            body["stream_options"] = {
                **(self.body.get("stream_options") or {}),
                "include_usage": True,
            }
        return UpstreamRequest(self.operation, body, self.stream, headers, connect_s)

    @property
    def wants_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True


def is_json(content_type: str) -> bool:
    """`application/json` or a `+json` type, parameters (charset) aside."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and
                                            media.endswith("+json"))  # fmt: skip


async def read_body(request: Request, server: ServerConfig, ctx: RequestContext) -> bytes:
    content_type = request.headers.get("content-type", "application/json")
    if not is_json(content_type):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {content_type!r}.")
    limit = server.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:  # the server protocol enforces body_timeout_s (it cancels this read)
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientClosedRequest(
                    "The client closed the connection while sending its request."
                )
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                raise PayloadTooLarge(f"Request body is larger than the {limit}-byte limit.")
            if not message.get("more_body", False):
                return b"".join(chunks)
    except asyncio.CancelledError:  # the server protocol's body deadline, or another cancel
        if not ctx.body_timed_out or ctx.task is None:
            raise
        ctx.task.uncancel()
        raise RequestTimeout(
            f"The request body was not received within {server.body_timeout_s:g} s."
        ) from None


def parse_body(raw: bytes, operation: Operation) -> ParsedRequest:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    check_depth(body, raw)
    for name in REQUIRED[operation]:
        if body.get(name) is None and not (name == "messages" and is_prompt_ref(body.get("model"))):
            raise InvalidRequest(
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string.", param="model")
    check_fields(body, operation)
    stream = body.get("stream", False)
    if body.get("stream_options") is not None and not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if operation == "embeddings" and stream:
        raise InvalidRequest("Embeddings cannot be streamed.", param="stream")
    return ParsedRequest(operation, body, model, bool(stream))


async def read_request(
    request: Request, operation: Operation, server: ServerConfig, ctx: RequestContext
) -> ParsedRequest:
    ctx.operation = operation
    call = parse_body(await read_body(request, server, ctx), operation)
    ctx.model, ctx.stream = call.model, call.stream
    ctx.client_wants_usage = call.wants_usage
    ctx.request_body = call.body
    ctx.params = {k: call.body[k] for k in SPAN_PARAMS if call.body.get(k) is not None}
    user = call.body.get("user")
    ctx.end_user = user if isinstance(user, str) else None
    metadata = call.body.get("metadata")
    if isinstance(metadata, dict) and metadata:
        ctx.tags = orjson.dumps(metadata).decode()
    return call
