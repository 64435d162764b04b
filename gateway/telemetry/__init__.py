"""Where finished requests go: the `TelemetrySink` extension point.

`record` is called once per request after its response has been delivered (streams
included) and must never raise or block; `aclose` flushes on shutdown.
"""

from __future__ import annotations

import logging
from typing import Protocol

from gateway.context import RequestContext

access_log = logging.getLogger("gateway.access")


class TelemetrySink(Protocol):
    def record(self, ctx: RequestContext) -> None: ...

    async def aclose(self) -> None: ...


class AccessLogSink:
    """One structured JSON access line per request."""

    def record(self, ctx: RequestContext) -> None:
        extra = {
            "request_id": ctx.request_id,
            "method": ctx.method,
            "path": ctx.path,
            "status": ctx.status,
            "latency_ms": round(ctx.latency_s * 1000, 3),
        }
        for key in ("model", "provider", "upstream_model", "key_id", "error_type"):
            value = getattr(ctx, key)
            if value is not None:
                extra[key] = value
        if ctx.stream:
            extra["stream"] = True
        if ctx.client_disconnected:
            extra["client_disconnected"] = True
        access_log.info("request", extra={"fields": extra})

    async def aclose(self) -> None:
        return None


SINKS: dict[str, type[TelemetrySink]] = {"log": AccessLogSink}
