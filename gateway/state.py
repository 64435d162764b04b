"""The one object the lifespan builds and every request reaches through `request.state`."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from gateway.cache import stage as cache
from gateway.context import RequestContext
from gateway.feedback.recent import RecentRequests
from gateway.limits import StoreUnavailable
from gateway.limits.alerts import post_alerts
from gateway.limits.stage import Reservation, actual_usage
from gateway.runtime import Runtime
from gateway.tasks import TaskOwner
from gateway.telemetry import AccessLogSink, TelemetrySink
from gateway.telemetry.accounting import settle
from gateway.telemetry.cost import Pricing
from gateway.telemetry.duckdb_sink import DuckDBSink
from gateway.telemetry.otel import OTelSink

log = logging.getLogger("gateway")
# not requests to log (operator endpoints included)
PROBES = frozenset({"/healthz", "/readyz", "/metrics", "/admin/cache/stats", "/admin/cache/clear"})


@dataclass
class GatewayState:
    runtime: Runtime
    sinks: list[TelemetrySink] = field(default_factory=list)
    tasks: TaskOwner = field(default_factory=TaskOwner)
    ready: bool = False
    metrics: CollectorRegistry | None = None  # what /metrics serves
    pricing: Pricing = field(default_factory=Pricing)
    # connections the server protocol refused (over max_connections) or timed out
    connection_faults: Counter[str] = field(default_factory=Counter)
    active: dict[asyncio.Task[Any], RequestContext] = field(default_factory=dict)  # in flight
    draining: bool = False
    recent: RecentRequests = field(default_factory=lambda: RecentRequests(0))  # for feedback

    def __post_init__(self) -> None:
        self._otel = next((s for s in self.sinks if isinstance(s, OTelSink)), None)
        self._sampler = self._otel if self._otel and self._otel.sampler is not None else None
        self.request_log = next((s for s in self.sinks if isinstance(s, DuckDBSink)), None)

    def connection_fault(self, what: str) -> None:
        """From the server protocol: `refused`, `header_timeout` or `body_timeout`."""
        self.connection_faults[what] += 1
        if self._otel is not None:
            self._otel.connection_fault(what)

    def begin_drain(self) -> None:
        """Shutdown has begun (the server protocol says so): not ready any more, and
        whatever still runs at the drain deadline is ended with server_shutting_down
        (streams with an error event) before the server would cut it off."""
        if self.draining:
            return
        self.draining, self.ready = True, False
        deadline = self.runtime.policy.server.drain_timeout_s
        log.info("draining: %d requests in flight, deadline %.0f s", len(self.active), deadline)
        asyncio.get_running_loop().call_later(deadline, self._cut)

    def _cut(self) -> None:
        if self.active:
            log.warning("drain deadline: ending %d requests with server_shutting_down",
                        len(self.active))  # fmt: skip
        for task, ctx in list(self.active.items()):
            ctx.shutting_down = True
            task.cancel()

    def start(self, ctx: RequestContext) -> None:
        """A request has arrived: decide whether its trace is sampled (when spans are
        exported at all)."""
        if self._sampler is not None:
            self._sampler.sample(ctx)

    def finish(self, ctx: RequestContext) -> None:
        """A request's response has been delivered (or abandoned): settle its tokens and
        cost, then tell every sink."""
        if ctx.operation is None and (ctx.path in PROBES or ctx.path.startswith("/admin/")):
            if self._otel is not None:  # no row, span or GenAI metric: a plain count
                # (admin paths without their ids: /admin/keys/k-1 counts as /admin/keys)
                path = ctx.path if ctx.path in PROBES else "/".join(ctx.path.split("/")[:3])
                self._otel.probe(path, ctx.status)
            return
        policy = self.runtime.policy
        model = policy.models.get(ctx.model or "")
        price = model.price if model is not None else None
        # a metric label takes the policy's model names only: a client's made-up names
        # would each add a series (and memory) without bound
        ctx.model_label = ctx.model or "" if model is not None else ("other" if ctx.model else "")
        if ctx.cache is not None:
            cache.commit(self.tasks, ctx)  # before settle lets go of the answer
        if policy.feedback.metrics and ctx.operation is not None:
            self.recent.limit = policy.feedback.recent_requests
            self.recent.add(ctx)  # (its response id is known by now)
        settle(ctx, self.pricing, price, policy.telemetry.capture_content)
        if ctx.limits is not None:  # the real usage replaces the reservation
            tokens, usd = actual_usage(ctx, policy.limits.cached_input_weight)
            self.tasks.spawn(settle_limits(ctx.limits, tokens, usd), "limits-settle")
        if ctx.budget_alerts and policy.limits.alert_webhook:
            self.tasks.spawn(post_alerts(policy.limits.alert_webhook, ctx.budget_alerts),
                             "budget-alert")  # fmt: skip
        for sink in self.sinks:
            sink.record(ctx)


async def settle_limits(reservation: Reservation, tokens: float, usd: float) -> None:
    try:
        await reservation.store.settle(reservation.request_id, tokens, usd)
    except StoreUnavailable as exc:  # the reservation's TTL sweeps it
        log.warning("could not settle a limit reservation (%s); it expires on its own", exc)


def build_sinks(runtime: Runtime, access_log: bool) -> list[TelemetrySink]:
    """Telemetry sinks come from the policy at startup (a reload does not move them)."""
    config = runtime.policy.telemetry
    sinks: list[TelemetrySink] = [AccessLogSink()] if access_log else []
    if config.otel:
        sinks.append(OTelSink())
    if config.duckdb:
        sinks.append(DuckDBSink(config.duckdb, config))
    return sinks


def prometheus_registry(sinks: list[TelemetrySink]) -> CollectorRegistry | None:
    return next((s.registry for s in sinks if isinstance(s, OTelSink)), None)
