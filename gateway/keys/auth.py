"""Who a request is: the gateway key it presents, from the policy (`auth.keys`) or from
the record store (made through the admin API), as an `Identity` the later stages read
(limits, model access, guardrails, cache namespace)."""

from __future__ import annotations

import fnmatch
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.auth import presented_key
from gateway.errors import AuthenticationFailed, Forbidden, ServiceUnavailable
from gateway.keys import KeyRecord, RecordStore, RecordUnavailable, TeamRecord
from gateway.limits.plan import KeyLimits
from gateway.policy.models import ApiKey, ModelGuardrails, Policy

CACHE_S = 1.0  # a change made on any replica counts everywhere within this


@dataclass(frozen=True, slots=True)
class Identity:
    key_id: str
    team: str | None
    models: tuple[str, ...]  # names or globs; empty: every model
    limits: KeyLimits
    guardrails: ModelGuardrails
    cache_namespace: str | None

    def may_use(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models)


def from_policy(key: ApiKey) -> Identity:
    return Identity(key.id, key.team, key.models, KeyLimits(key.id, key.team, key.limits,
                    key.budgets), key.guardrails, key.cache_namespace)  # fmt: skip


def from_record(key: KeyRecord) -> Identity:
    return Identity(key.id, key.team, key.models, KeyLimits(key.id, key.team, key.limits,
                    key.budgets), key.guardrails, key.cache_namespace)  # fmt: skip


class Authenticator:
    """Policy keys by their hash; record-store keys through a one-second cache (a
    revoked key stops working everywhere within a second)."""

    def __init__(self, policy: Policy, records: RecordStore | None) -> None:
        self.by_hash = {k.sha256: from_policy(k) for k in policy.auth.keys}
        self.records = records
        self.required = bool(policy.auth.keys) or policy.auth.require_keys
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._teams: dict[str, tuple[float, TeamRecord | None]] = {}

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        """The presented key's identity; None when keys are not required and none (or
        an unknown one) was presented."""
        if not self.required and self.records is None:
            return None
        key = presented_key(headers)
        if not key:
            if self.required:
                raise AuthenticationFailed("Missing API key: send it as 'Authorization: Bearer "
                                           "<key>'.")  # fmt: skip
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        found = self.by_hash.get(digest)
        if found is None and self.records is not None:
            found = await self.lookup(digest)
        if found is None and self.required:
            raise AuthenticationFailed("Incorrect API key provided.")
        return found

    async def lookup(self, digest: str) -> Identity | None:
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        assert self.records is not None
        try:
            doc = await self.records.get("key", "sha256:" + digest)
        except RecordUnavailable:
            if cached is not None:  # the last known answer, while the store is away
                return cached[1]
            raise ServiceUnavailable("Gateway keys cannot be checked right now (the key store "
                                     "is unavailable); try again shortly.",
                                     code="keys_unavailable",
                                     headers={"retry-after": "1"}) from None  # fmt: skip
        record = KeyRecord.model_validate(doc) if doc is not None else None
        identity = from_record(record) if record and record.active(datetime.now(UTC)) else None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[digest] = (now + CACHE_S, identity)
        return identity

    async def team(self, name: str) -> TeamRecord | None:
        """A team made through the admin API (cached as keys are)."""
        if self.records is None:
            return None
        now = time.monotonic()
        cached = self._teams.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            doc = await self.records.get("team", name)
        except RecordUnavailable:
            return cached[1] if cached is not None else None
        team = TeamRecord.model_validate(doc) if doc is not None else None
        team = team if team is not None and team.revoked_at is None else None
        self._teams[name] = (now + CACHE_S, team)
        return team


def check_model(identity: Identity | None, model: str) -> None:
    if identity is not None and not identity.may_use(model):
        raise Forbidden(f"The key {identity.key_id!r} may not use the model {model!r}.",
                        param="model", code="model_not_allowed")  # fmt: skip
