"""HTTP endpoints: thin handlers that hand API calls to the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway import pipeline
from gateway.cache import admin as cache_admin
from gateway.errors import NotFound, ServiceUnavailable
from gateway.feedback import endpoint as feedback
from gateway.keys import admin as keys_admin
from gateway.limits import usage as limits_usage
from gateway.state import GatewayState

JSON = "application/json"
Handler = Callable[[Request], Awaitable[Response]]


class Endpoint:
    """A handler as a plain ASGI app. Starlette's `request_response` would wrap each call
    in two more exception-handling layers; errors are mapped once, by the middleware."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.__name__ = handler.__name__

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handler(Request(scope, receive, send))
        await response(scope, receive, send)


async def chat_completions(request: Request) -> Response:
    return await pipeline.handle(request, "chat")


async def completions(request: Request) -> Response:
    return await pipeline.handle(request, "completions")


async def embeddings(request: Request) -> Response:
    return await pipeline.handle(request, "embeddings")


async def list_models(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    await state.runtime.auth.authenticate(request.headers)
    return Response(state.runtime.models_body, media_type=JSON)


async def get_model(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    await state.runtime.auth.authenticate(request.headers)
    return Response(
        orjson.dumps(state.runtime.model_card(request.path_params["model_id"])), media_type=JSON
    )


async def gateway_routes(request: Request) -> Response:
    """Each model's targets with their EWMA latency, in flight, error ratio and breaker."""
    state: GatewayState = request.state.gateway
    await state.runtime.auth.authenticate(request.headers)
    now = asyncio.get_running_loop().time()
    body = {"models": [route.snapshot(now) for route in state.runtime.routes.values()]}
    return Response(orjson.dumps(body), media_type=JSON)


async def gateway_experiments(request: Request) -> Response:
    """Each prompt experiment's arms (version, model) and their current traffic shares."""
    state: GatewayState = request.state.gateway
    await state.runtime.auth.authenticate(request.headers)
    body = {"experiments": [e.snapshot() for e in state.runtime.experiments.values()]}
    return Response(orjson.dumps(body), media_type=JSON)


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


async def readyz(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    if not state.ready:
        raise ServiceUnavailable("The gateway is starting or shutting down.")
    body: dict[str, object] = {"status": "ready", "policy": state.runtime.loaded.source}
    limiter = state.runtime.limiter
    if limiter is not None:  # degraded: the store is down (closed refuses, open lets through)
        down = limiter.unavailable_since
        body["limits"] = {"store": state.runtime.policy.store.type,
                          "enforcing": "degraded" if down is not None else "ok",
                          "on_error": state.runtime.policy.store.on_error,
                          **({"unavailable_since": down} if down is not None else {})}  # fmt: skip
    return Response(orjson.dumps(body), media_type=JSON)


async def metrics(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    client = request.client.host if request.client else None
    state.runtime.keys.authorize_metrics(request.headers, client)
    if state.metrics is None:
        raise NotFound("Metrics are not enabled.")
    return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/v1/chat/completions", Endpoint(chat_completions), methods=["POST"]),
    Route("/v1/completions", Endpoint(completions), methods=["POST"]),
    Route("/v1/embeddings", Endpoint(embeddings), methods=["POST"]),
    Route("/v1/models", Endpoint(list_models), methods=["GET"]),
    Route("/v1/models/{model_id:path}", Endpoint(get_model), methods=["GET"]),
    Route("/v1/feedback", Endpoint(feedback.post_feedback), methods=["POST"]),
    Route("/v1/gateway/routes", Endpoint(gateway_routes), methods=["GET"]),
    Route("/v1/gateway/experiments", Endpoint(gateway_experiments), methods=["GET"]),
    Route("/healthz", Endpoint(healthz), methods=["GET"]),
    Route("/readyz", Endpoint(readyz), methods=["GET"]),
    Route("/metrics", Endpoint(metrics), methods=["GET"]),
    Route("/admin/cache/stats", Endpoint(cache_admin.stats), methods=["GET"]),
    Route("/admin/cache/clear", Endpoint(cache_admin.clear), methods=["POST"]),
    Route("/admin/keys", Endpoint(keys_admin.create_key), methods=["POST"]),
    Route("/admin/keys", Endpoint(keys_admin.list_records), methods=["GET"]),
    Route("/admin/keys/{id}", Endpoint(keys_admin.get_record), methods=["GET"]),
    Route("/admin/keys/{id}", Endpoint(keys_admin.update_record), methods=["PATCH"]),
    Route("/admin/keys/{id}", Endpoint(keys_admin.revoke_record), methods=["DELETE"]),
    Route("/admin/teams", Endpoint(keys_admin.create_team), methods=["POST"]),
    Route("/admin/teams", Endpoint(keys_admin.list_records), methods=["GET"]),
    Route("/admin/teams/{id}", Endpoint(keys_admin.get_record), methods=["GET"]),
    Route("/admin/teams/{id}", Endpoint(keys_admin.update_record), methods=["PATCH"]),
    Route("/admin/teams/{id}", Endpoint(keys_admin.revoke_record), methods=["DELETE"]),
    Route("/admin/audit", Endpoint(keys_admin.audit), methods=["GET"]),
    Route("/admin/usage", Endpoint(limits_usage.usage), methods=["GET"]),
]
