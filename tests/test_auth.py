import pytest

from gateway.auth import hash_key
from gateway.errors import AuthenticationFailed
from gateway.keys.auth import Authenticator
from gateway.policy.models import ApiKey, AuthConfig, Policy

CONFIG = AuthConfig(
    keys=(
        ApiKey(id="team-a", sha256=hash_key("sk-a")),
        ApiKey(id="team-b", sha256=hash_key("sk-b")),
    )
)


def authenticator(config: AuthConfig) -> Authenticator:
    return Authenticator(Policy(version=1, auth=config), None)


async def test_no_keys_accepts_anything() -> None:
    assert await authenticator(AuthConfig()).authenticate({}) is None


@pytest.mark.parametrize(
    ("headers", "key_id"),
    [
        ({"authorization": "Bearer sk-a"}, "team-a"),
        ({"authorization": "bearer sk-b"}, "team-b"),
        ({"api-key": "sk-b"}, "team-b"),
        ({"x-api-key": "sk-a"}, "team-a"),
    ],
)
async def test_valid_keys_map_to_their_id(headers: dict[str, str], key_id: str) -> None:
    identity = await authenticator(CONFIG).authenticate(headers)
    assert identity is not None and identity.key_id == key_id


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer sk-c"}, {"authorization": "Basic sk-a"}]
)
async def test_missing_or_wrong_key_is_401(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        await authenticator(CONFIG).authenticate(headers)
    assert info.value.status == 401
    assert "sk-" not in info.value.message
