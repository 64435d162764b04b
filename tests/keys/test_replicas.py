"""Keys made through the admin API on one replica work on the others at once, and a
revoked key fails on every replica within a second (two gateways, one Redis)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx

from benchmarks.mock_upstream import MockUpstream
from tests.conftest import gateway_process

ADMIN = "admin-secret-for-replicas"


def test_a_key_made_on_one_replica_and_revoked_on_it_fails_on_the_other_within_a_second(
    tmp_path: Path, mock: MockUpstream, redis_url: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""\
version: 1
providers:
  mock: {{type: openai, base_url: '{mock.base_url}/v1'}}
models:
  chat: {{provider: mock, upstream_model: up-chat}}
auth:
  require_keys: true
  admin_keys: [{hashlib.sha256(ADMIN.encode()).hexdigest()}]
store: {{type: redis, url: '{redis_url}'}}
""")
    admin = {"authorization": f"Bearer {ADMIN}"}
    with (
        gateway_process(path, tmp_path / "a.log") as a,
        gateway_process(path, tmp_path / "b.log") as b,
    ):
        assert (
            httpx.post(
                b + "/v1/chat/completions", json={"model": "chat", "messages": []}
            ).status_code
            == 401
        )
        secret = httpx.post(a + "/admin/keys", headers=admin, json={"id": "app"}).json()["key"]
        body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
        user = {"authorization": f"Bearer {secret}"}
        assert httpx.post(b + "/v1/chat/completions", headers=user, json=body).status_code == 200
        assert httpx.delete(a + "/admin/keys/app", headers=admin).status_code == 200
        revoked_at = time.monotonic()
        while httpx.post(b + "/v1/chat/completions", headers=user, json=body).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, "still accepted a second after revoking"
            time.sleep(0.05)
        assert time.monotonic() - revoked_at < 1.2
        listed = httpx.get(b + "/admin/keys", headers=admin).json()["data"]
        assert [k["id"] for k in listed] == ["app"] and listed[0]["revoked_at"]
