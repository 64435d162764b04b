from pathlib import Path

import pytest

from gateway.policy.loader import PolicyError, load_policy, parse_texts
from gateway.policy.models import HttpProviderConfig

GOOD = """\
version: 1
providers:
  openai:
    type: openai
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
models:
  chat:
    provider: openai
    upstream_model: gpt-4o-mini
"""


def issues(
    text: str, env: dict[str, str] | None = None, name: str = "policies/prod.yaml"
) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_texts([(name, text)], env if env is not None else {"OPENAI_API_KEY": "k"})
    return [str(i) for i in info.value.issues]


def test_good_policy_loads_and_interpolates_env() -> None:
    policy = parse_texts([("p.yaml", GOOD)], {"OPENAI_API_KEY": "sk-live"})
    provider = policy.providers["openai"]
    assert isinstance(provider, HttpProviderConfig) and provider.api_key is not None
    assert provider.api_key.get_secret_value() == "sk-live"
    assert "sk-live" not in repr(policy)  # secrets never print
    assert policy.models["chat"].upstream_model == "gpt-4o-mini"


def test_unknown_provider_names_file_line_and_path() -> None:
    text = GOOD.replace("provider: openai", "provider: opnai")
    assert issues(text) == ["policies/prod.yaml:9: models.chat.provider: unknown provider 'opnai'"]


def test_unknown_key_is_rejected_with_its_line() -> None:
    text = GOOD.replace(
        "    upstream_model: gpt-4o-mini", "    upstream_model: gpt-4o-mini\n    temprature: 1"
    )
    assert issues(text) == ["policies/prod.yaml:11: models.chat.temprature: unknown key"]


def test_missing_env_variable_is_reported_by_name() -> None:
    assert issues(GOOD, env={}) == [
        "policies/prod.yaml:6: providers.openai.api_key: environment variable OPENAI_API_KEY is not set"
    ]


def test_env_default_and_escape() -> None:
    text = GOOD.replace("${OPENAI_API_KEY}", "${NOPE:-fallback}$$x")
    policy = parse_texts([("p.yaml", text)], {})
    provider = policy.providers["openai"]
    assert isinstance(provider, HttpProviderConfig)
    key = provider.api_key
    assert key is not None and key.get_secret_value() == "fallback$x"


def test_every_error_is_reported_at_once() -> None:
    text = GOOD.replace("type: openai", "type: openia").replace("upstream_model: gpt-4o-mini", "")
    found = issues(text)
    assert len(found) == 2
    assert found[0].startswith("policies/prod.yaml:4: providers.openai.type: Input should be")
    assert found[1] == "policies/prod.yaml:8: models.chat.upstream_model: required key is missing"


def test_duplicate_keys_are_errors_not_silently_overwritten() -> None:
    text = GOOD + "  chat:\n    provider: openai\n    upstream_model: other\n"
    assert issues(text) == ["policies/prod.yaml:11: models.chat: duplicate key"]


def test_invalid_yaml_names_the_line() -> None:
    assert issues("version: 1\nmodels: [unclosed\n")[0].startswith(
        "policies/prod.yaml:3: invalid YAML"
    )


def test_bad_types_and_fallbacks() -> None:
    text = GOOD.replace("upstream_model: gpt-4o-mini", "upstream_model: x\n    fallbacks: [nope]")
    assert issues(text) == ["policies/prod.yaml:11: models.chat.fallbacks[0]: unknown model 'nope'"]
    text = GOOD.replace("    api_key", "    timeout_s: -1\n    api_key")
    assert issues(text)[0].startswith(
        "policies/prod.yaml:6: providers.openai.timeout_s: Input should be greater than 0"
    )


def test_directory_merges_files_and_reports_the_right_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(
        "version: 1\nmodels:\n  other:\n    provider: missing\n    upstream_model: m\n"
    )
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path)
    assert [str(i) for i in info.value.issues] == [
        f"{tmp_path / 'b.yaml'}:4: models.other.provider: unknown provider 'missing'"
    ]
    (tmp_path / "b.yaml").write_text(
        "version: 1\nmodels:\n  other:\n    provider: openai\n    upstream_model: m\n"
    )
    loaded = load_policy(tmp_path)
    assert set(loaded.policy.models) == {"chat", "other"}
    assert len(loaded.files) == 2


def test_same_model_in_two_files_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(
        "version: 1\nmodels:\n  chat:\n    provider: openai\n    upstream_model: m\n"
    )
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path)
    assert "models.chat: defined again in" in str(info.value)


def test_missing_path() -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_policy("/nonexistent/policy.yaml")


def test_packaged_default_policy_loads_without_any_env() -> None:
    loaded = load_policy(None, env={})
    assert loaded.policy.models
    assert all(getattr(p, "api_key", None) is None for p in loaded.policy.providers.values())


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_binding_without_keys_is_loopback_only(host: str, ok: bool) -> None:
    policy = parse_texts([("p.yaml", GOOD)], {"OPENAI_API_KEY": "k"})
    assert policy.may_bind(host) is ok
    opted_in = parse_texts(
        [("p.yaml", GOOD + "auth:\n  allow_unauthenticated_remote: true\n")],
        {"OPENAI_API_KEY": "k"},
    )
    assert opted_in.may_bind(host)


def test_shipped_policies_are_valid_and_hold_no_inline_secrets() -> None:
    root = Path(__file__).resolve().parents[2]
    files = [*sorted((root / "policies").glob("*.yaml")), root / "gateway/policy/default.yaml"]
    assert files
    for file in files:
        text = file.read_text()
        for line in text.splitlines():
            if line.strip().startswith("api_key:"):
                assert "${" in line, f"{file}: inline api_key"
    load_policy(
        root / "policies",
        env={
            "OPENAI_API_KEY": "k",
            "ANTHROPIC_API_KEY": "k",
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
        },
    )


def test_every_missing_env_variable_beside_every_other_error() -> None:
    text = GOOD.replace("upstream_model: gpt-4o-mini", "upstream_model: ${MODEL_NAME}").replace(
        "provider: openai", "provider: opnai"
    )
    found = issues(text, env={})
    assert any("OPENAI_API_KEY is not set" in f for f in found), found
    assert any("MODEL_NAME is not set" in f for f in found), found
    assert any("unknown provider 'opnai'" in f for f in found), found


def test_literal_secret_is_refused_with_the_env_form() -> None:
    text = GOOD.replace("${OPENAI_API_KEY}", "sk-live-1234")
    found = issues(text, env={})
    assert found == [
        "policies/prod.yaml:6: providers.openai.api_key: a literal secret: write "
        "`api_key: ${OPENAI_API_KEY}` and set OPENAI_API_KEY in the environment"
    ]
    assert "sk-live-1234" not in found[0]
