"""`/admin/cache/stats` and `/admin/cache/clear`: what `gateway cache stats | clear` ask a
running gateway (memory caches live in its process; Redis ones are read directly too).
Loopback clients only, unless `auth.admin_key_sha256` is set (then that key only)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.cache import Cache, namespace_id
from gateway.cache.store import StoreUnavailable
from gateway.errors import InvalidRequest
from gateway.state import GatewayState

JSON = "application/json"


def authorize(request: Request) -> GatewayState:
    state: GatewayState = request.state.gateway
    client = request.client.host if request.client else None
    state.runtime.keys.authorize_admin(request.headers, client)
    return state


async def describe(cache: Cache) -> dict[str, Any]:
    """One cache: its settings, what its store holds, and this process's counts."""
    config = cache.config
    counts = dict(cache.counts)
    verified = sum(counts.get(k, 0) for k in ("verify_match", "verify_mismatch"))
    out: dict[str, Any] = {
        "name": cache.name, "type": config.type, "backend": config.backend,
        "ttl_s": config.ttl_s, "counts": counts, "verified": verified,
        "false_hit_rate": round(counts.get("verify_mismatch", 0) / verified, 4)
        if verified else None,
    }  # fmt: skip
    try:
        info = await cache.store.info()
        out.update(entries=info.entries, bytes=info.bytes, store="up")
    except (StoreUnavailable, OSError) as exc:
        out.update(entries=None, bytes=None, store=f"unavailable: {exc}")
    return out


async def stats(request: Request) -> Response:
    state = authorize(request)
    caches = [await describe(c) for c in state.runtime.caches.values()]
    return Response(orjson.dumps({"caches": caches}), media_type=JSON)


async def clear(request: Request) -> Response:
    """Body (optional): `{"namespace": "team-a", "cache": "default"}`."""
    state = authorize(request)
    raw = await request.body()
    try:
        doc = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body must be JSON.") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("The body must be a JSON object.")
    namespace, name = doc.get("namespace"), doc.get("cache")
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidRequest("'namespace' must be a string.", param="namespace")
    caches = state.runtime.caches
    if name is not None and name not in caches:
        raise InvalidRequest(f"unknown cache {name!r}", param="cache")
    removed = {}
    for cache_name, cache in caches.items():
        if name is None or cache_name == name:
            removed[cache_name] = await cache.clear(
                namespace_id(namespace) if namespace is not None else None
            )
    return Response(orjson.dumps({"removed": removed}), media_type=JSON)
