"""`type: onnx`: a model run inside the gateway (chat/completions or embeddings),
answering in OpenAI's wire format like any upstream.

Policy: `model:` a built-in id (pulled into the model cache on first start) or a
directory. Chat requests go to the model's continuous-batching scheduler; embedding
requests run on a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    LocalModelFailed,
    UnsupportedParameter,
)
from gateway.local.loaded import ChatModel, EmbeddingModel, read_meta
from gateway.local.registry import KNOWN, model_path, pull
from gateway.local.scheduler import Delta, Failed, Finished, Sampling, Sequence
from gateway.policy.models import LocalProviderConfig
from gateway.providers.base import Completion, Operation, UpstreamRequest


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"{key} must be a number in [{low}, {high}]", param=key)
    return float(value)


def _stops(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) for s in stops):
        raise InvalidRequest("stop must be a string or a list of up to 4 strings", param="stop")
    return tuple(stops)


def unsupported(body: dict[str, Any]) -> None:
    """What a local model cannot do is refused as OpenAI refuses a parameter a model
    lacks, never ignored: tools (no tool-call parsing), structured output (no constrained
    decoding), logprobs, several choices."""
    tools = body.get("tools") or body.get("functions")
    if tools and body.get("tool_choice") != "none":
        raise UnsupportedParameter("tools" if body.get("tools") else "functions")
    if body.get("tool_choice") not in (None, "none", "auto") and not tools:
        raise UnsupportedParameter("tool_choice")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise UnsupportedParameter("response_format")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise UnsupportedParameter("logprobs")
    if body.get("n", 1) != 1:
        raise UnsupportedParameter("n", "local models generate one choice (n=1)")


def sampling(body: dict[str, Any], room: int, default_max_tokens: int) -> Sampling:
    unsupported(body)
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    limit = int(_number(body, key, min(default_max_tokens, room), 1, 1 << 30))
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidRequest("seed must be an integer", param="seed")
    return Sampling(
        max_tokens=min(limit, room),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        top_k=int(_number(body, "top_k", 0, 0, 1 << 20)),
        seed=seed,
        stop=_stops(body),
    )


class LocalStream:
    """Chunks from the scheduler; closing it frees the sequence's batch row."""

    def __init__(self, seq: Sequence, first: bytes, shape: _Shape) -> None:
        self.seq = seq
        self.headers: dict[str, str] = {}
        self._first = first
        self._shape = shape

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        try:
            while True:
                event = await self.seq.events.get()
                if isinstance(event, Delta):
                    yield self._shape.chunk(event.text, None)
                elif isinstance(event, Finished):
                    yield self._shape.chunk("", event.reason)
                    yield self._shape.usage_chunk(event)
                    return
                else:
                    raise LocalModelFailed(event.message)
        finally:
            self.seq.cancelled = True

    async def aclose(self) -> None:
        self.seq.cancelled = True


class _Shape:
    """OpenAI's response and chunk shapes for chat or legacy completions."""

    def __init__(self, chat: bool, model: str) -> None:
        self.chat = chat
        self.model = model
        prefix = "chatcmpl-" if chat else "cmpl-"
        self.id = prefix + secrets.token_hex(12)
        self.created = int(time.time())
        self.object = "chat.completion.chunk" if chat else "text_completion"

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def chunk(self, text: str, finish: str | None, role: bool = False) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta}
        else:
            choice = {"index": 0, "text": text}
        choice.update(logprobs=None, finish_reason=finish)
        return orjson.dumps({**self._head(self.object), "choices": [choice]})

    def usage_chunk(self, done: Finished) -> bytes:
        return orjson.dumps({**self._head(self.object), "choices": [], "usage": _usage(done)})

    def whole(self, text: str, done: Finished) -> bytes:
        if self.chat:
            message = {"role": "assistant", "content": text, "refusal": None}
            choice: dict[str, Any] = {"index": 0, "message": message}
            obj = "chat.completion"
        else:
            choice, obj = {"index": 0, "text": text}, "text_completion"
        choice.update(logprobs=None, finish_reason=done.reason)
        return orjson.dumps({**self._head(obj), "choices": [choice], "usage": _usage(done)})


def _usage(done: Finished) -> dict[str, int]:
    total = done.prompt_tokens + done.completion_tokens
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": total}  # fmt: skip


class OnnxProvider:
    system = "onnx"
    address: tuple[str, int | None] = ("", None)  # in process: INTERNAL spans

    def __init__(self, name: str, config: LocalProviderConfig) -> None:
        self.name = name
        self.config = config
        if config.model in KNOWN:
            pull(config.model, progress=print_progress, quiet=True)
        directory = model_path(config.model)
        self.chat: ChatModel | None = None
        self.embedder: EmbeddingModel | None = None
        meta = directory / "gateway_model.json"
        if meta.is_file() and read_meta(directory).get("format") == "llm-gateway/bert-v1":
            self.embedder = EmbeddingModel(directory, config.threads)
        else:
            self.chat = ChatModel(
                directory, config.max_batch, config.threads, config.context_length,
                config.precision,
            )  # fmt: skip

    def supports(self, operation: Operation) -> bool:
        if operation == "embeddings":
            return self.embedder is not None
        return self.chat is not None

    def _submit(self, request: UpstreamRequest) -> tuple[Sequence, _Shape]:
        assert self.chat is not None
        body, chat = request.body, request.operation == "chat"
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise InvalidRequest("messages must be a non-empty list", param="messages")
            prompt = self.chat.text.chat_prompt(messages)
        else:
            text = body.get("prompt")
            if isinstance(text, list) and len(text) == 1 and isinstance(text[0], str):
                text = text[0]
            if not isinstance(text, str):
                raise InvalidRequest("prompt must be one string", param="prompt")
            prompt = self.chat.text.encode(text) or [0]
        room = self.chat.context_length - len(prompt)
        if room < 1:
            raise ContextLengthExceeded(
                f"this model's context is {self.chat.context_length} tokens; the prompt has "
                f"{len(prompt)}", param="messages" if chat else "prompt")  # fmt: skip
        plan = sampling(body, room, self.config.default_max_tokens)
        seq = Sequence(prompt, plan, asyncio.get_running_loop())
        self.chat.scheduler.submit(seq)
        return seq, _Shape(chat, str(body.get("model", self.config.model)))

    async def complete(self, request: UpstreamRequest) -> Completion:
        if request.operation == "embeddings":
            return await self._embed(request)
        seq, shape = self._submit(request)
        parts: list[str] = []
        try:
            while True:
                event = await seq.events.get()
                if isinstance(event, Delta):
                    parts.append(event.text)
                elif isinstance(event, Finished):
                    return Completion(shape.whole("".join(parts), event))
                elif isinstance(event, Failed):
                    raise LocalModelFailed(event.message)
        finally:
            seq.cancelled = True

    async def stream(self, request: UpstreamRequest) -> LocalStream:
        seq, shape = self._submit(request)
        return LocalStream(seq, shape.chunk("", None, role=True), shape)

    async def _embed(self, request: UpstreamRequest) -> Completion:
        assert self.embedder is not None
        body = request.body
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("input must be a string or a list of strings", param="input")
        if len(texts) > 2048:
            raise InvalidRequest("at most 2048 inputs per request", param="input")
        dims = body.get("dimensions")
        if dims is not None and dims != self.embedder.dimensions:
            raise InvalidRequest(f"this model has {self.embedder.dimensions} dimensions",
                                 param="dimensions")  # fmt: skip
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise InvalidRequest("encoding_format must be float or base64", param="encoding_format")
        vectors, tokens = await asyncio.to_thread(self.embedder.embed, texts)
        data = [
            {"object": "embedding", "index": i,
             "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()
             if fmt == "base64" else v.tolist()}
            for i, v in enumerate(vectors)
        ]  # fmt: skip
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        out = {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
        return Completion(orjson.dumps(out))

    async def aclose(self) -> None:
        if self.chat is not None:
            await asyncio.to_thread(self.chat.close)


def print_progress(message: str) -> None:
    import logging

    logging.getLogger("gateway.local").info(message)
