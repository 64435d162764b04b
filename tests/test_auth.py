import pytest

from gateway.auth import KeyChecker, hash_key
from gateway.errors import AuthenticationFailed
from gateway.policy.models import ApiKey, AuthConfig

CONFIG = AuthConfig(
    keys=(
        ApiKey(id="team-a", sha256=hash_key("sk-a")),
        ApiKey(id="team-b", sha256=hash_key("sk-b")),
    )
)


def test_no_keys_accepts_anything() -> None:
    assert KeyChecker(AuthConfig()).authenticate({}) is None


@pytest.mark.parametrize(
    ("headers", "key_id"),
    [
        ({"authorization": "Bearer sk-a"}, "team-a"),
        ({"authorization": "bearer sk-b"}, "team-b"),
        ({"api-key": "sk-b"}, "team-b"),
        ({"x-api-key": "sk-a"}, "team-a"),
    ],
)
def test_valid_keys_map_to_their_id(headers: dict[str, str], key_id: str) -> None:
    assert KeyChecker(CONFIG).authenticate(headers) == key_id


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer sk-c"}, {"authorization": "Basic sk-a"}]
)
def test_missing_or_wrong_key_is_401(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        KeyChecker(CONFIG).authenticate(headers)
    assert info.value.status == 401
    assert "sk-" not in info.value.message
