"""`GET /admin/usage?key=ID&team=NAME&since=24h`: a key's (and its team's) or a team's
limits and budgets now, from the limit store, and what the request log says they spent
since a moment (`since`: 30m, 24h, 7d, or an ISO date; default 24h)."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import InvalidRequest, NotFound, ServiceUnavailable
from gateway.keys import KeyRecord, TeamRecord
from gateway.keys.admin import authorize_admin
from gateway.limits import StoreUnavailable
from gateway.limits.plan import KeyLimits, Scope, checks, scopes
from gateway.policy.limits import ScopeLimits
from gateway.runtime import Runtime
from gateway.state import GatewayState
from gateway.stats import window_seconds

LOG_SQL = """
SELECT count(*), coalesce(sum(cost_usd), 0)::DOUBLE, coalesce(sum(input_tokens), 0),
       coalesce(sum(output_tokens), 0)
FROM requests WHERE {column} = ? AND started_at >= make_timestamp(?::BIGINT)
"""


async def usage(request: Request) -> Response:
    runtime, _ = authorize_admin(request)
    state: GatewayState = request.state.gateway
    key_id, team = request.query_params.get("key"), request.query_params.get("team")
    if not key_id and not team:
        raise InvalidRequest("Name a 'key' or a 'team'.", param="key")
    since = since_unix(request.query_params.get("since", "24h"))
    found = await scopes_of(runtime, key_id, team)
    out: dict[str, Any] = {"object": "usage", "key": key_id, "team": team,
                           "scopes": await current(runtime, found)}  # fmt: skip
    if state.request_log is not None:
        column, value = ("key_id", key_id) if key_id else ("team", team)
        rows = await asyncio.to_thread(state.request_log.query, LOG_SQL.format(column=column),
                                       [value, int(since * 1_000_000)], 2.0)  # fmt: skip
        n, usd, tokens_in, tokens_out = rows[0] if rows else (0, 0.0, 0, 0)
        out["since"] = {
            "from": datetime.fromtimestamp(since).isoformat(), "requests": n, "cost_usd": usd,
            "input_tokens": tokens_in, "output_tokens": tokens_out,
        }  # fmt: skip
    return Response(orjson.dumps(out), media_type="application/json")


def since_unix(text: str) -> float:
    try:
        return time.time() - window_seconds(text)
    except argparse.ArgumentTypeError:
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            raise InvalidRequest(
                "'since' is a window (30m, 24h, 7d) or an ISO date.", param="since"
            ) from None


async def scopes_of(runtime: Runtime, key_id: str | None, team: str | None) -> list[Scope]:
    policy = runtime.policy
    if key_id:
        key = next((k for k in policy.auth.keys if k.id == key_id), None)
        limits: KeyLimits | None = (KeyLimits(key.id, key.team, key.limits, key.budgets)
                                    if key is not None else None)  # fmt: skip
        if limits is None and runtime.records is not None:
            doc = await runtime.records.get("key", key_id)
            if doc is not None:
                record = KeyRecord.model_validate(doc)
                limits = KeyLimits(record.id, record.team, record.limits, record.budgets)
        if limits is None:
            raise NotFound(f"No key {key_id!r}.", param="key", code="key_not_found")
        return scopes(policy, limits, None, await api_team(runtime, limits.team))
    assert team is not None
    config = policy.teams.get(team) or await api_team(runtime, team)
    if config is None:
        raise NotFound(f"No team {team!r}.", param="team", code="team_not_found")
    return [Scope(f"team:{team}", config.limits, config.budgets)]


async def api_team(runtime: Runtime, name: str | None) -> ScopeLimits | None:
    if not name or name in runtime.policy.teams or runtime.records is None:
        return None
    doc = await runtime.records.get("team", name)
    return TeamRecord.model_validate(doc) if doc is not None else None


async def current(runtime: Runtime, found: list[Scope]) -> list[dict[str, Any]]:
    if runtime.limiter is None:
        return [{"scope": s.name, "limits": [], "budgets": []} for s in found]
    now = time.time()
    planned = checks(found, "", 0, Decimal(0), now, runtime.limiter.zone)
    try:
        decision = await runtime.limiter.store.read(planned)
    except StoreUnavailable as exc:
        raise ServiceUnavailable(f"The limit store is unavailable: {exc}") from None
    out: dict[str, dict[str, Any]] = {s.name: {"scope": s.name, "limits": [], "budgets": []}
                                      for s in found}  # fmt: skip
    for check, value in zip(planned, decision.values, strict=True):
        entry = out.setdefault(check.scope, {"scope": check.scope, "limits": [], "budgets": []})
        reset = round(decision.reset_s(check), 1)
        if check.kind == "usd":
            entry["budgets"].append({"period": check.name.split(":")[1], "usd": check.limit,
                                     "spent_usd": round(value, 6),
                                     "remaining_usd": round(max(0.0, check.limit - value), 6),
                                     "share": round(value / check.limit, 4),
                                     "resets_in_s": reset})  # fmt: skip
        else:
            entry["limits"].append({"name": check.name, "limit": check.limit, "used": value,
                                    "resets_in_s": reset if check.window else None})  # fmt: skip
    return list(out.values())
