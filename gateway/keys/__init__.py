"""Gateway keys and teams made through the admin API (`/admin/keys`, `/admin/teams`),
beside the policy's own. Records live in a `RecordStore`, chosen by `store.type`:
`embedded` (SQLite, the limits' file) or `redis` (every replica); each change is one
atomic write with its audit row. Requests find a key by its secret's SHA-256 through a
one-second cache, so a key made, changed or revoked anywhere counts everywhere within
a second."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field

from gateway.limits import RedisFactory
from gateway.policy.base import Strict
from gateway.policy.limits import Budget, Limits, ScopeLimits, StoreConfig
from gateway.policy.models import ModelGuardrails

Kind = Literal["key", "team"]
SECRET_PREFIX = "sk-gw-"


def new_secret() -> str:
    """256 bits of randomness, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyFields(Strict):
    """What an admin sets on a key (POST creates, PATCH changes)."""

    team: str | None = None
    models: tuple[str, ...] = ()  # names or globs (empty: every model)
    budgets: tuple[Budget, ...] = ()
    limits: Limits = Limits()
    expires_at: datetime | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    guardrails: ModelGuardrails = ModelGuardrails()
    cache_namespace: str | None = Field(default=None, min_length=1)


class KeyRecord(KeyFields):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    prefix: str = ""  # the secret's first characters, to recognise it by
    created_at: str = ""
    updated_at: str = ""
    revoked_at: str | None = None

    def public(self, source: str = "api") -> dict[str, Any]:
        """The record as the admin API shows it (never the hash of the secret)."""
        doc = self.model_dump(mode="json", exclude={"sha256"})
        return {"object": "key", **doc, "source": source}

    def active(self, at: datetime) -> bool:
        expires = self.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return self.revoked_at is None and (expires is None or expires > at)


class TeamFields(ScopeLimits):
    models: tuple[str, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)


class TeamRecord(TeamFields):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    created_at: str = ""
    updated_at: str = ""
    revoked_at: str | None = None

    def public(self, source: str = "api") -> dict[str, Any]:
        return {"object": "team", **self.model_dump(mode="json"), "source": source}


class RecordUnavailable(Exception):
    """The record store did not answer (in time)."""


class RecordStore(Protocol):
    async def get(self, kind: Kind, ident: str) -> dict[str, Any] | None:
        """A record by id; kind `key` also takes `sha256:<hex>` (a secret's hash)."""
        ...

    async def put(self, kind: Kind, record: dict[str, Any], audit: dict[str, Any]) -> None:
        """Write the record (and for keys its hash index) with its audit row, atomically."""
        ...

    async def list_all(self, kind: Kind) -> list[dict[str, Any]]: ...

    async def audit(self, limit: int) -> list[dict[str, Any]]:
        """The newest audit rows first."""
        ...

    async def aclose(self) -> None: ...


def build_records(config: StoreConfig, redis: RedisFactory, path: Path) -> RecordStore:
    """The policy's `store:` for keys and teams (the same place as the limits' counters)."""
    timeout_s = config.timeout_ms / 1000
    if config.type == "redis":
        from gateway.keys.redis_records import RedisRecords

        assert config.url is not None
        return RedisRecords(redis(config.url, timeout_s), timeout_s)
    from gateway.keys.sqlite_records import SqliteRecords

    return SqliteRecords(path, timeout_s)
