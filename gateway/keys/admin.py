"""The admin API for keys and teams: `POST/GET /admin/keys`, `GET/PATCH/DELETE
/admin/keys/{id}`, the same under `/admin/teams`, and `GET /admin/audit`. It takes an
admin key only (GATEWAY_ADMIN_KEY, `auth.admin_keys`, `auth.admin_key_sha256`), never a
gateway key; without one configured it is off (403). A new key's secret is in the
creation answer only; the store keeps its SHA-256. Every change writes an audit row
(who, what, when, before and after; never a secret or its hash)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import presented_key
from gateway.errors import (
    AuthenticationFailed,
    Forbidden,
    GatewayError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
)
from gateway.keys import (
    KeyFields,
    KeyRecord,
    Kind,
    RecordStore,
    RecordUnavailable,
    TeamFields,
    TeamRecord,
    new_secret,
    now_iso,
)
from gateway.runtime import Runtime
from gateway.state import GatewayState

JSON = "application/json"
ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


def admin_hashes(runtime: Runtime) -> set[str]:
    auth = runtime.policy.auth
    found = set(auth.admin_keys) | set(runtime.policy.admin_keys)
    found |= {auth.admin_key_sha256} if auth.admin_key_sha256 else set()
    env = os.environ.get(ADMIN_KEY_ENV)
    if env:
        found.add(hashlib.sha256(env.encode()).hexdigest())
    return found


def authorize(request: Request) -> tuple[Runtime, RecordStore, str]:
    """The runtime, its record store and the actor (the admin key's fingerprint)."""
    runtime, actor = authorize_admin(request)
    if runtime.records is None:
        raise Forbidden("Keys and teams made through the API need a `store:` in the policy.")
    return runtime, runtime.records, actor


def authorize_admin(request: Request) -> tuple[Runtime, str]:
    """An admin key (never a gateway key): the runtime and the actor."""
    state: GatewayState = request.state.gateway
    runtime = state.runtime
    allowed = admin_hashes(runtime)
    if not allowed:
        raise Forbidden(f"The admin API is off: set {ADMIN_KEY_ENV} or auth.admin_keys.")
    key = presented_key(request.headers)
    digest = hashlib.sha256(key.encode()).hexdigest() if key else ""
    if not key or not any(hmac.compare_digest(digest, h) for h in allowed):
        if digest and digest in runtime.auth.by_hash:
            raise Forbidden("A gateway key cannot use the admin API: use an admin key.")
        raise AuthenticationFailed("The admin API takes an admin key.")
    return runtime, "admin:" + digest[:12]


def answer(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON)


async def body_of(
    request: Request, model: type[BaseModel], partial: bool = False
) -> tuple[BaseModel, dict[str, Any]]:
    try:
        doc = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("The body must be a JSON object.")
    fields = {k: v for k, v in doc.items() if k != "id"}
    try:
        parsed = model.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise InvalidRequest(f"{where}: {message}", param=where) from None
    return parsed, doc


async def stored(records: RecordStore, kind: Kind, ident: str) -> dict[str, Any] | None:
    try:
        return await records.get(kind, ident)
    except RecordUnavailable as exc:
        raise ServiceUnavailable(f"The key store is unavailable: {exc}") from None


async def save(records: RecordStore, kind: Kind, record: dict[str, Any], actor: str,
               action: str, before: dict[str, Any] | None) -> None:  # fmt: skip
    audit = {"at": now_iso(), "actor": actor, "action": action, "before": before,
             "after": without_hash(record)}  # fmt: skip
    try:
        await records.put(kind, record, audit)
    except RecordUnavailable as exc:
        raise ServiceUnavailable(f"The key store is unavailable: {exc}") from None


async def check_references(runtime: Runtime, records: RecordStore, fields: BaseModel) -> None:
    team = getattr(fields, "team", None)
    if team and team not in runtime.policy.teams:
        found = await stored(records, "team", team)
        if found is None or found.get("revoked_at"):
            raise InvalidRequest(f"Unknown team {team!r}.", param="team")
    guardrails = getattr(fields, "guardrails", None)
    for stage in ("input", "output"):
        for name in getattr(guardrails, stage, ()):
            if name not in runtime.policy.guardrails:
                raise InvalidRequest(f"Unknown guardrail {name!r}.", param=f"guardrails.{stage}")


def new_id(doc: dict[str, Any], kind: str) -> str:
    ident = doc.get("id")
    if ident is None and kind == "key":
        return "key-" + secrets.token_hex(4)
    if not isinstance(ident, str) or not ident:
        raise InvalidRequest(f"A {kind} needs an 'id'.", param="id")
    return ident


async def create_key(request: Request) -> Response:
    runtime, records, actor = authorize(request)
    fields, doc = await body_of(request, KeyFields)
    await check_references(runtime, records, fields)
    ident = new_id(doc, "key")
    if any(k.id == ident for k in runtime.policy.auth.keys) or await stored(records, "key", ident):
        raise Conflict(f"A key {ident!r} exists already.", param="id")
    secret = new_secret()
    now = now_iso()
    try:
        record = KeyRecord(id=ident, sha256=hashlib.sha256(secret.encode()).hexdigest(),
                           prefix=secret[:10], created_at=now, updated_at=now,
                           **fields.model_dump())  # fmt: skip
    except ValidationError as exc:
        raise InvalidRequest(f"id: {exc.errors()[0]['msg']}", param="id") from None
    doc_out = record.model_dump(mode="json")
    await save(records, "key", doc_out, actor, "create", None)
    return answer({**record.public(), "key": secret})


async def create_team(request: Request) -> Response:
    runtime, records, actor = authorize(request)
    fields, doc = await body_of(request, TeamFields)
    ident = new_id(doc, "team")
    if ident in runtime.policy.teams or await stored(records, "team", ident):
        raise Conflict(f"A team {ident!r} exists already.", param="id")
    now = now_iso()
    try:
        record = TeamRecord(id=ident, created_at=now, updated_at=now, **fields.model_dump())
    except ValidationError as exc:
        raise InvalidRequest(f"id: {exc.errors()[0]['msg']}", param="id") from None
    await save(records, "team", record.model_dump(mode="json"), actor, "create", None)
    return answer(record.public())


def policy_key(runtime: Runtime, ident: str) -> dict[str, Any] | None:
    for key in runtime.policy.auth.keys:
        if key.id == ident:
            doc = key.model_dump(mode="json", exclude={"sha256"})
            return {"object": "key", **doc, "source": "policy"}
    return None


def policy_team(runtime: Runtime, ident: str) -> dict[str, Any] | None:
    team = runtime.policy.teams.get(ident)
    if team is None:
        return None
    return {"object": "team", "id": ident, **team.model_dump(mode="json"), "source": "policy"}


async def list_records(request: Request) -> Response:
    runtime, records, _ = authorize(request)
    kind: Kind = "key" if request.url.path.rstrip("/").endswith("keys") else "team"
    try:
        found = await records.list_all(kind)
    except RecordUnavailable as exc:
        raise ServiceUnavailable(f"The key store is unavailable: {exc}") from None
    if kind == "key":
        data = [policy_key(runtime, k.id) for k in runtime.policy.auth.keys]
        data += [KeyRecord.model_validate(r).public() for r in found]
    else:
        data = [policy_team(runtime, t) for t in runtime.policy.teams]
        data += [TeamRecord.model_validate(r).public() for r in found]
    return answer({"object": "list", "data": data})


async def get_record(request: Request) -> Response:
    runtime, records, _ = authorize(request)
    kind, ident = kind_of(request), request.path_params["id"]
    local = policy_key(runtime, ident) if kind == "key" else policy_team(runtime, ident)
    if local is not None:
        return answer(local)
    return answer(public(kind, await existing(records, kind, ident)))


def kind_of(request: Request) -> Kind:
    return "key" if request.url.path.startswith("/admin/keys") else "team"


def public(kind: Kind, doc: dict[str, Any]) -> dict[str, Any]:
    if kind == "key":
        return KeyRecord.model_validate(doc).public()
    return TeamRecord.model_validate(doc).public()


async def existing(records: RecordStore, kind: Kind, ident: str) -> dict[str, Any]:
    doc = await stored(records, kind, ident)
    if doc is None:
        raise NotFound(f"No {kind} {ident!r}.", param="id", code=f"{kind}_not_found")
    return doc


async def api_record(runtime: Runtime, records: RecordStore, kind: Kind, ident: str,
                     verb: str) -> dict[str, Any]:  # fmt: skip
    """A record made through the API (a policy's own: 409, `verb` it in the policy)."""
    if policy_key(runtime, ident) if kind == "key" else policy_team(runtime, ident):
        raise Conflict(f"The {kind} {ident!r} is defined in the policy: {verb} it there.")
    return await existing(records, kind, ident)


def without_hash(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "sha256"}


async def update_record(request: Request) -> Response:
    runtime, records, actor = authorize(request)
    kind, ident = kind_of(request), request.path_params["id"]
    before = await api_record(runtime, records, kind, ident, "change")
    if before.get("revoked_at"):
        raise Conflict(f"The {kind} {ident!r} is revoked.")
    fields, _ = await body_of(request, KeyFields if kind == "key" else TeamFields)
    await check_references(runtime, records, fields)
    changed = fields.model_dump(mode="json", include=fields.model_fields_set)
    after = {**before, **changed, "updated_at": now_iso()}
    record = (KeyRecord if kind == "key" else TeamRecord).model_validate(after)
    await save(records, kind, record.model_dump(mode="json"), actor, "update",
               without_hash(before))  # fmt: skip
    return answer(public(kind, record.model_dump(mode="json")))


async def revoke_record(request: Request) -> Response:
    runtime, records, actor = authorize(request)
    kind, ident = kind_of(request), request.path_params["id"]
    before = await api_record(runtime, records, kind, ident, "remove")
    if kind == "team":
        users = [k["id"] for k in await records.list_all("key")
                 if k.get("team") == ident and not k.get("revoked_at")]  # fmt: skip
        if users:
            raise Conflict(f"Team {ident!r} still has keys: {', '.join(users)}.")
    if before.get("revoked_at"):
        return answer(public(kind, before))
    after = {**before, "revoked_at": now_iso(), "updated_at": now_iso()}
    await save(records, kind, after, actor, "revoke", without_hash(before))
    return answer(public(kind, after))


async def audit(request: Request) -> Response:
    _, records, _ = authorize(request)
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
        raise InvalidRequest("'limit' is a number from 1 to 10000.", param="limit")
    try:
        rows = await records.audit(int(limit))
    except RecordUnavailable as exc:
        raise ServiceUnavailable(f"The key store is unavailable: {exc}") from None
    return answer({"object": "list", "data": rows})


Handler = Callable[[Request], Awaitable[Response]]
