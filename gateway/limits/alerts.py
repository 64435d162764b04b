"""Budget alerts to `limits.alert_webhook`: one POST per alert, after the response."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger("gateway.limits")


async def post_alerts(url: str, alerts: list[tuple[str, str, float]]) -> None:
    """`{"scope", "budget", "share"}` each; a failure is logged, never raised."""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            for scope, budget, share in alerts:
                response = await client.post(url, json={"scope": scope, "budget": budget,
                                                        "share": share})  # fmt: skip
                if response.status_code >= 400:
                    log.warning("budget alert webhook answered %d", response.status_code)
    except httpx.HTTPError as exc:
        log.warning("budget alert webhook failed: %s", exc)
