"""HTTP endpoints: thin handlers that hand API calls to the pipeline."""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import pipeline
from gateway.errors import NotFound, ServiceUnavailable
from gateway.state import GatewayState

JSON = "application/json"


async def chat_completions(request: Request) -> Response:
    return await pipeline.handle(request, "chat")


async def completions(request: Request) -> Response:
    return await pipeline.handle(request, "completions")


async def embeddings(request: Request) -> Response:
    return await pipeline.handle(request, "embeddings")


async def list_models(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    state.runtime.keys.authenticate(request.headers)
    return Response(state.runtime.models_body, media_type=JSON)


async def get_model(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    state.runtime.keys.authenticate(request.headers)
    return Response(
        orjson.dumps(state.runtime.model_card(request.path_params["model_id"])), media_type=JSON
    )


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


async def readyz(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    if not state.ready:
        raise ServiceUnavailable("The gateway is starting or shutting down.")
    body = {"status": "ready", "policy": state.runtime.loaded.source}
    return Response(orjson.dumps(body), media_type=JSON)


async def metrics(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    if state.metrics is None:
        raise NotFound("Metrics are not enabled.")
    return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
