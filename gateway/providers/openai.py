"""`type: openai` (any OpenAI-compatible server) and `type: azure` (Azure OpenAI).

The request body is forwarded as it came (only `model` was rewritten by the router)
and the response is relayed byte for byte.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from gateway.errors import UpstreamUnreachable
from gateway.policy.models import HttpProviderConfig
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
from gateway.providers.wire import check_completion

PATHS: dict[Operation, str] = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


class OpenAIStream:
    def __init__(self, response: UpstreamResponse, url: str, http: UpstreamHTTP) -> None:
        self._response = response
        self._http = http
        self._url = url
        self._ended = False
        self.headers = relayed_headers(response)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for event in iter_sse(self._response, self._url, self._http.max_event_bytes):
            if event.data == b"[DONE]":
                self._ended = True
                return
            # masked here; checked where each chunk is read anyway (the guardrails' rewrite,
            # the relay's observe_chunk): one JSON parse a chunk, not two
            yield self._http.mask(event.data)
        raise UpstreamUnreachable("upstream stream ended before [DONE]")

    async def aclose(self) -> None:
        """After [DONE] the connection is kept (only the chunked terminator is left);
        before it, it is closed, which stops the upstream's generation."""
        if self._ended:
            self._response.release()
        else:
            await self._response.aclose()


class OpenAIProvider:
    system = "openai"

    def __init__(self, name: str, config: HttpProviderConfig) -> None:
        self.name = name
        self.config = config
        self.address = upstream_address(config.base_url)
        self.http = UpstreamHTTP(config)
        self._headers = {"content-type": "application/json", **USER_AGENT, **config.headers}
        if config.api_key is not None:
            self._headers.update(self.auth_headers(config.api_key.get_secret_value()))

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    def url(self, request: UpstreamRequest) -> str:
        return self.config.base_url + PATHS[request.operation]

    def body(self, request: UpstreamRequest) -> bytes:
        return dumps(request.body)

    def supports(self, operation: Operation) -> bool:
        return operation in PATHS

    async def complete(self, request: UpstreamRequest) -> Completion:
        url = self.url(request)
        headers = {**self._headers, **request.headers}
        response = await self.http.send(
            url, self.body(request), headers, stream=False, connect_s=request.connect_s
        )
        body = self.http.mask(response.content)
        doc = check_completion(request.operation, body)
        return Completion(body, relayed_headers(response), doc)

    async def stream(self, request: UpstreamRequest) -> OpenAIStream:
        url = self.url(request)
        headers = {**self._headers, **request.headers, "accept": "text/event-stream"}
        response = await self.http.send(
            url, self.body(request), headers, stream=True, connect_s=request.connect_s
        )
        return OpenAIStream(response, url, self.http)

    async def aclose(self) -> None:
        await self.http.aclose()


class AzureProvider(OpenAIProvider):
    """Azure OpenAI: the deployment is in the path and the key in `api-key`.

    With `api_version` set: `{base_url}/openai/deployments/{deployment}/...?api-version=`;
    without it, the v1 API at `{base_url}` (which takes the model in the body).
    """

    system = "azure.ai.openai"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key}

    def url(self, request: UpstreamRequest) -> str:
        if self.config.api_version is None:
            return self.config.base_url + PATHS[request.operation]
        deployment = quote(str(request.body.get("model", "")), safe="")
        path = f"/openai/deployments/{deployment}{PATHS[request.operation]}"
        return f"{self.config.base_url}{path}?api-version={self.config.api_version}"

    def body(self, request: UpstreamRequest) -> bytes:
        if self.config.api_version is None:
            return dumps(request.body)
        return dumps({k: v for k, v in request.body.items() if k != "model"})
