"""The ASGI application: routes, the error boundary, and the lifespan that builds the
one `GatewayState` every request reaches through `request.state.gateway`."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, MethodNotAllowed, NotFound
from gateway.middleware import RequestContextMiddleware
from gateway.policy.loader import LoadedPolicy, load_policy
from gateway.reload import PolicyReloader
from gateway.routes import ROUTES
from gateway.runtime import Runtime
from gateway.state import GatewayState, build_sinks, prometheus_registry

POLICY_ENV = "GATEWAY_POLICY"
ACCESS_LOG_ENV = "GATEWAY_ACCESS_LOG"


@dataclass(frozen=True)
class Settings:
    policy_path: str | None = None
    preloaded: LoadedPolicy | None = None
    watch_policy: bool = True
    access_log: bool = True


def error_response(exc: GatewayError) -> Response:
    return Response(exc.to_body(), exc.status, exc.headers, media_type="application/json")


async def on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    ctx = getattr(request.state, "ctx", None)
    if ctx is not None and ctx.error_type is None:
        ctx.error_type = exc.error_type
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error: GatewayError = MethodNotAllowed(
            f"Method {request.method} is not allowed for {request.url.path}."
        )
    else:
        error = NotFound(f"Unknown request URL: {request.method} {request.url.path}.")
    return await on_gateway_error(request, error)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings(
        policy_path=os.environ.get(POLICY_ENV) or None,
        access_log=os.environ.get(ACCESS_LOG_ENV, "1") != "0",
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, GatewayState]]:
        loaded = settings.preloaded or load_policy(settings.policy_path)
        runtime = Runtime(loaded)
        sinks = build_sinks(runtime, settings.access_log)
        state = GatewayState(runtime, sinks=sinks, metrics=prometheus_registry(sinks))
        reloader = PolicyReloader(state, settings.policy_path)
        reloader.start(settings.watch_policy)
        app.state.reloader = reloader  # for tests and admin tooling
        gc.collect()
        gc.freeze()  # what startup built lives on: keep it out of every later collection
        state.ready = True
        try:
            yield {"gateway": state}
        finally:
            state.ready = False
            reloader.stop()
            await state.tasks.join(cancel=False)
            await state.runtime.aclose()
            for sink in state.sinks:
                await sink.aclose()
            gc.unfreeze()  # what startup built may be collected again (and torn down at exit)

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers={GatewayError: on_gateway_error, HTTPException: on_http_error},
        lifespan=lifespan,
    )
