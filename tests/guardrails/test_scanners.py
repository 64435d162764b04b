import pytest

from gateway.guardrails.scanners import (
    DenyListScanner,
    LimitsScanner,
    SecretsScanner,
    trailing_words,
)
from gateway.policy.models import DenyListGuardrail, LimitsGuardrail, SecretsGuardrail

SECRETS = SecretsScanner("secrets", SecretsGuardrail(type="secrets"))
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("secret", "entity"),
    [
        ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "OPENAI_API_KEY"),
        ("sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv", "OPENAI_API_KEY"),
        ("AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID"),
        ("ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "GITHUB_TOKEN"),
        ("xoxb-123456789012-abcdefABCDEF", "SLACK_TOKEN"),
        ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_KEY"),
        (
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "JWT",
        ),
        (PEM, "PRIVATE_KEY"),
    ],
)
async def test_secrets_are_found_with_exact_spans(secret: str, entity: str) -> None:
    text = f"my key is {secret} thanks"
    (finding,) = await SECRETS.scan(text)
    assert text[finding.start : finding.end] == secret
    assert finding.entity in (entity, "ANTHROPIC_API_KEY")


@pytest.mark.parametrize(
    "text",
    [
        "ask-me anything",
        "sk-short",
        "the task-list is long",
        "AKIA is a prefix",
        "eyJ alone",
        "xoxb-1",
    ],
)
async def test_look_alikes_pass(text: str) -> None:
    assert await SECRETS.scan(text) == []


def test_holdback_is_what_could_still_become_a_secret() -> None:
    assert SECRETS.holdback("hello wor") == 9  # no token starts like "wor"
    assert SECRETS.holdback("hello world ") == 12
    assert SECRETS.holdback("my key s") == 7
    assert SECRETS.holdback("my key sk-pro") == 7
    assert SECRETS.holdback("my key sure") == 11
    # whole, but more characters could extend it (or undo its final word boundary)
    assert SECRETS.holdback("id AKIAIOSFODNN7EXAMPLE") == 3
    assert SECRETS.holdback("id AKIAIOSFODNN7EXAMPLE.") == 24
    assert SECRETS.holdback("a -") == 2  # could open a PEM block
    text = "x -----BEGIN RSA PRIVATE KEY-----\nMIIE"
    assert SECRETS.holdback(text) == 2
    assert SECRETS.holdback(PEM + " done") == len(PEM) + 5
    assert trailing_words("a b c", 2) == 2
    assert trailing_words("a b c ", 2) == 4


async def test_deny_list_keywords_phrases_and_patterns() -> None:
    scanner = DenyListScanner(
        "deny",
        DenyListGuardrail(
            type="deny_list", keywords=("project titan", "nuclear"), patterns=(r"\bORD-\d{6}\b",)
        ),
    )
    found = await scanner.scan(
        "About Project  Titan? no: project titan and NUCLEAR plans, ref ORD-123456, nuclearity"
    )
    assert [f.entity for f in found] == ["DENIED"] * 3
    assert scanner.holdback("one two three") == len("one ")
    assert scanner.holdback("one two ") == len("one ")


def test_limits() -> None:
    limits = LimitsScanner(
        "limits",
        LimitsGuardrail(type="limits", max_messages=2, max_input_tokens=5, max_output_tokens=100),
    )
    assert (
        limits.check_request({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        is None
    )
    assert "3 messages" in str(
        limits.check_request({"messages": [{"role": "user", "content": "a"}] * 3})
    )
    assert "input tokens" in str(
        limits.check_request(
            {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "one two three four five six seven"}],
            }
        )
    )
    assert "max_tokens 500" in str(limits.check_request({"messages": [], "max_tokens": 500}))
