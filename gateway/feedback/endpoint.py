"""`POST /v1/feedback`: a client's verdict on one of its own requests."""

from __future__ import annotations

import asyncio
import time

import duckdb
import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import RequestContext
from gateway.errors import Forbidden, InvalidRequest, NotFound, ServiceUnavailable
from gateway.feedback import parse_feedback
from gateway.feedback.recent import Owner
from gateway.requests import read_body
from gateway.state import GatewayState

LOOKUP_WAIT_S = 2.0  # the request log held by another process this long: 503


async def post_feedback(request: Request) -> Response:
    state: GatewayState = request.state.gateway
    ctx: RequestContext = request.state.ctx
    runtime = state.runtime
    identity = await runtime.auth.authenticate(request.headers)
    ctx.key_id = identity.key_id if identity is not None else None
    config = runtime.policy.feedback
    if not config.metrics:
        raise NotFound("Feedback is off: the policy declares no feedback metrics.",
                       code="feedback_disabled")  # fmt: skip
    raw = await read_body(request, runtime.policy.server, ctx)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}") from None
    if isinstance(doc, dict) and "request_id" not in doc and "x-request-id" in request.headers:
        doc["request_id"] = ctx.request_id  # the answer's id, sent back as x-request-id
    feedback = parse_feedback(doc, config)
    log = state.request_log
    if log is None:
        raise ServiceUnavailable("The request log is not open (telemetry.duckdb takes effect "
                                 "at startup): feedback cannot be stored.")  # fmt: skip
    request_id = await own_request(state, feedback.request_id, ctx.key_id)
    feedback_id, row = feedback.row(request_id, ctx.key_id)
    log.record_feedback(row)
    body = {
        "object": "feedback", "id": feedback_id, "request_id": request_id,
        "metric": feedback.metric, "value": feedback.answer, "comment": feedback.comment,
        "created_at": int(time.time()),
    }  # fmt: skip
    return Response(orjson.dumps(body), media_type="application/json")


async def own_request(state: GatewayState, ident: str, key_id: str | None) -> str:
    """The request `ident` names (its request id or its response's id), if the caller's
    key made it: this process's recent requests first, then the request log."""
    owners = state.recent.owners(ident)
    if not owners and state.request_log is not None:
        try:
            owners = await asyncio.to_thread(state.request_log.owners, ident, LOOKUP_WAIT_S)
        except duckdb.Error:
            raise ServiceUnavailable("The request log is busy; try the feedback again.",
                                     headers={"retry-after": "1"}) from None  # fmt: skip
    return pick_own(owners, ident, key_id)


def pick_own(owners: tuple[Owner, ...], ident: str, key_id: str | None) -> str:
    own = [request_id for request_id, owner in owners if owner == key_id]
    if own:
        return own[-1]
    if owners:
        raise Forbidden("That request was made with another key: a key gives feedback on "
                        "its own requests only.", param="request_id")  # fmt: skip
    raise NotFound(f"No request with id {ident!r} is known.", param="request_id",
                   code="request_not_found")  # fmt: skip
