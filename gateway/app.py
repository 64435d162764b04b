"""The ASGI application: the middleware (request context and error boundary) over the
routes, and the lifespan that builds the one `GatewayState` every request reaches through
`request.state.gateway`."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.datastructures import State
from starlette.routing import Router

from gateway.middleware import RequestContextMiddleware
from gateway.policy.loader import LoadedPolicy, load_policy
from gateway.prompts.arm_stats import ArmStatsRefresher
from gateway.reload import PolicyReloader
from gateway.routes import ROUTES
from gateway.runtime import Runtime
from gateway.state import GatewayState, build_sinks, prometheus_registry
from gateway.telemetry import tokens

POLICY_ENV = "GATEWAY_POLICY"
ACCESS_LOG_ENV = "GATEWAY_ACCESS_LOG"


@dataclass(frozen=True)
class Settings:
    policy_path: str | None = None
    preloaded: LoadedPolicy | None = None
    watch_policy: bool = True
    access_log: bool = True


class GatewayApp(RequestContextMiddleware):
    """The middleware directly over Starlette's router (no frame in between); `state`
    holds what the lifespan exposes to tests and admin tooling (the policy reloader)."""

    def __init__(self, router: Router) -> None:
        super().__init__(router)
        self.state = State()


def create_app(settings: Settings | None = None) -> GatewayApp:
    settings = settings or Settings(
        policy_path=os.environ.get(POLICY_ENV) or None,
        access_log=os.environ.get(ACCESS_LOG_ENV, "1") != "0",
    )

    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[dict[str, GatewayState]]:
        loaded = settings.preloaded or load_policy(settings.policy_path, lock=True)
        await asyncio.to_thread(tokens.preload)  # what token estimates need, off the loop
        runtime = Runtime(loaded)
        sinks = build_sinks(runtime, settings.access_log)
        state = GatewayState(runtime, sinks=sinks, metrics=prometheus_registry(sinks))
        reloader = PolicyReloader(state, settings.policy_path)
        reloader.start(settings.watch_policy)
        app.state.reloader = reloader
        arm_stats = ArmStatsRefresher(state)
        arm_stats.start()
        gc.collect()
        gc.freeze()  # what startup built lives on: keep it out of every later collection
        state.ready = True
        try:
            yield {"gateway": state}
        finally:
            state.ready = False
            reloader.stop()
            arm_stats.stop()
            await state.tasks.join(cancel=False)
            await state.runtime.aclose()
            for sink in state.sinks:
                await sink.aclose()
            gc.unfreeze()  # what startup built may be collected again (and torn down at exit)

    app = GatewayApp(Router(routes=ROUTES, lifespan=lifespan))
    return app
