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
        self._operator = {
            "metrics": bytes.fromhex(config.metrics_key_sha256)
            if config.metrics_key_sha256 else None,
            "admin": bytes.fromhex(config.admin_key_sha256) if config.admin_key_sha256 else None,
        }  # fmt: skip

    def authorize_metrics(self, headers: Mapping[str, str], client: str | None) -> None:
        """`/metrics` names key ids: with `auth.metrics_key_sha256` it takes that key (and
        no gateway key); without, it answers loopback clients only (a local Prometheus)."""
        self.authorize_operator("metrics", headers, client)

    def authorize_admin(self, headers: Mapping[str, str], client: str | None) -> None:
        """`/admin/*`: `auth.admin_key_sha256` only; without it, loopback clients only."""
        self.authorize_operator("admin", headers, client)

    def authorize_operator(self, what: str, headers: Mapping[str, str], client: str | None) -> None:
        stored = self._operator[what]
        if stored is None:
            if client is None or client.startswith(LOOPBACK):
                return
            raise Forbidden(
                f"This endpoint answers loopback clients only: set auth.{what}_key_sha256 to "
                "reach it from elsewhere."
            )
        key = presented_key(headers)
        if not key or not hmac.compare_digest(hashlib.sha256(key.encode()).digest(), stored):
            raise AuthenticationFailed(f"This endpoint takes the {what} key.")
