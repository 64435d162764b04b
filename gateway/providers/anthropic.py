"""`type: anthropic`: the Messages API behind the OpenAI chat interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway.errors import UpstreamError, UpstreamInvalidResponse, UpstreamUnreachable
from gateway.policy.models import HttpProviderConfig
from gateway.providers import openai_to_anthropic as translate
from gateway.providers.base import (
    USER_AGENT,
    Completion,
    Operation,
    UpstreamHTTP,
    UpstreamRequest,
    dumps,
    iter_sse,
    relayed_headers,
    upstream_address,
)
from gateway.providers.transport import UpstreamResponse
from gateway.providers.wire import parse

DEFAULT_VERSION = "2023-06-01"
# what a translation function raises on a document of the wrong shape
TRANSLATION_ERRORS = (KeyError, TypeError, AttributeError, ValueError, IndexError)


class AnthropicHTTP(UpstreamHTTP):
    def error_body(self, status: int, raw: bytes) -> tuple[bytes, str]:
        return translate.error_from_upstream(status, raw)


class AnthropicStream:
    def __init__(
        self, response: UpstreamResponse, url: str, include_usage: bool, http: UpstreamHTTP
    ) -> None:
        self._response = response
        self._http = http
        self._url = url
        self._translator = translate.StreamTranslator(include_usage)
        self._ended = False
        self.headers = relayed_headers(response)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for event in iter_sse(self._response, self._url, self._http.max_event_bytes):
            data: Any = parse(self._http.mask(event.data), "stream event")
            name = event.event or str(data.get("type", ""))
            if name == "error":
                body, message = translate.error_from_upstream(500, self._http.mask(event.data))
                raise UpstreamError(500, body, message, {})
            try:
                chunks = self._translator.feed(name, data)
            except TRANSLATION_ERRORS:
                raise UpstreamInvalidResponse(
                    f"the upstream's {name!r} event is malformed"
                ) from None
            for chunk in chunks:
                yield dumps(chunk)
            if name == "message_stop":
                self._ended = True
                return
        raise UpstreamUnreachable("upstream stream ended before message_stop")

    async def aclose(self) -> None:
        """After message_stop the connection is kept; before it, closed (as OpenAIStream)."""
        if self._ended:
            self._response.release()
        else:
            await self._response.aclose()


class AnthropicProvider:
    system = "anthropic"

    def __init__(self, name: str, config: HttpProviderConfig) -> None:
        self.name = name
        self.config = config
        self.address = upstream_address(config.base_url)
        self.http = AnthropicHTTP(config)
        self.url = messages_url(config.base_url)
        self._headers = {
            "content-type": "application/json",
            **USER_AGENT,
            "anthropic-version": config.api_version or DEFAULT_VERSION,
            **config.headers,
        }
        if config.api_key is not None:
            self._headers["x-api-key"] = config.api_key.get_secret_value()

    def supports(self, operation: Operation) -> bool:
        return operation == "chat"

    async def complete(self, request: UpstreamRequest) -> Completion:
        body = dumps(translate.to_upstream(request.body))
        response = await self.http.send(
            self.url, body, {**self._headers, **request.headers}, stream=False,
            connect_s=request.connect_s,
        )  # fmt: skip
        message = parse(self.http.mask(response.content), "response")
        try:
            translated = translate.from_upstream(message)
        except TRANSLATION_ERRORS:
            raise UpstreamInvalidResponse("the upstream's message is malformed") from None
        return Completion(dumps(translated), relayed_headers(response))

    async def stream(self, request: UpstreamRequest) -> AnthropicStream:
        body = dumps(translate.to_upstream(request.body))
        headers = {**self._headers, **request.headers, "accept": "text/event-stream"}
        response = await self.http.send(
            self.url, body, headers, stream=True, connect_s=request.connect_s
        )
        options = request.body.get("stream_options") or {}
        usage = bool(options.get("include_usage"))
        return AnthropicStream(response, self.url, usage, self.http)

    async def aclose(self) -> None:
        await self.http.aclose()


def messages_url(base_url: str) -> str:
    """`base_url` as the policy has it (`.../v1`) or as Anthropic's SDKs and
    `ANTHROPIC_BASE_URL` write it (`https://api.anthropic.com`, no `/v1`): both reach
    `/v1/messages`."""
    return base_url + ("/messages" if base_url.endswith("/v1") else "/v1/messages")
