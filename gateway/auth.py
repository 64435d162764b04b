"""Gateway API keys: stored as sha256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from gateway.errors import AuthenticationFailed, Forbidden
from gateway.policy.models import AuthConfig


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return headers.get("api-key") or headers.get("x-api-key")


LOOPBACK = ("127.", "::1", "localhost")


class KeyChecker:
    def __init__(self, config: AuthConfig) -> None:
        self._keys = [(bytes.fromhex(k.sha256), k.id) for k in config.keys]
        metrics = config.metrics_key_sha256
        self._metrics = bytes.fromhex(metrics) if metrics else None

    def authorize_metrics(self, headers: Mapping[str, str], client: str | None) -> None:
        """`/metrics` names key ids: with `auth.metrics_key_sha256` it takes that key (and
        no gateway key); without, it answers loopback clients only (a local Prometheus)."""
        if self._metrics is None:
            if client is None or client.startswith(LOOPBACK):
                return
            raise Forbidden(
                "Metrics are served to loopback clients only: set auth.metrics_key_sha256 to "
                "scrape from elsewhere."
            )
        key = presented_key(headers)
        if not key or not hmac.compare_digest(hashlib.sha256(key.encode()).digest(), self._metrics):
            raise AuthenticationFailed("This endpoint takes the metrics key.")

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        """The id of the presented key; None when no keys are configured."""
        if not self._keys:
            return None
        key = presented_key(headers)
        if not key:
            raise AuthenticationFailed("Missing API key: send it as 'Authorization: Bearer <key>'.")
        digest = hashlib.sha256(key.encode()).digest()
        found: str | None = None
        for stored, key_id in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(digest, stored):
                found = key_id
        if found is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        return found
