"""The chain on whole responses and on streams split at every possible boundary."""

import asyncio
from typing import Any

import orjson
import pytest

from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.guardrails import build_guardrail
from gateway.guardrails.chain import GuardedStream, guard_input, redact
from gateway.guardrails.scanners import Finding
from gateway.policy.models import DenyListGuardrail, SecretsGuardrail
from tests.guardrails.streams import FakeStream

KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
ANSWER = f"Sure. Your key {KEY} is set; project titan starts now."
REDACTOR = [build_guardrail("secrets", SecretsGuardrail(type="secrets", action="redact")),
            build_guardrail("deny", DenyListGuardrail(type="deny_list", action="redact", keywords=("project titan",)))]  # fmt: skip
EXPECTED = "Sure. Your key <OPENAI_API_KEY> is set; <DENIED> starts now."


def run(pieces: list[str], chain: list = REDACTOR) -> list[str]:  # type: ignore[type-arg]
    async def collect() -> list[str]:
        stream = GuardedStream(RequestContext("r", "POST", "/"), FakeStream(pieces), chain)
        out = []
        async for payload in stream:
            for choice in orjson.loads(payload)["choices"]:
                out.append(choice["delta"].get("content") or "")
        return out

    return asyncio.run(collect())


def test_redact_replaces_spans_with_typed_placeholders() -> None:
    assert redact("a bc d", [Finding(2, 4, "X")]) == "a <X> d"


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_stream_in_small_pieces_never_leaks(size: int) -> None:
    pieces = [ANSWER[i : i + size] for i in range(0, len(ANSWER), size)]
    out = run(pieces)
    assert "".join(out) == EXPECTED
    sent = "".join(out)
    for i in range(len(KEY) - 5):
        assert KEY[i : i + 6] not in sent  # not a single 6-char piece of the secret


def test_every_two_way_split_gives_the_same_redacted_text() -> None:
    for cut in range(1, len(ANSWER)):
        out = run([ANSWER[:cut], ANSWER[cut:]])
        assert "".join(out) == EXPECTED, cut
        assert not any(KEY[:8] in piece for piece in out)


def test_clean_text_flows_without_waiting_for_the_end() -> None:
    out = run(["Hello ", "there, ", "how ", "are ", "you?"], REDACTOR[:1])
    # secrets: a word that cannot begin a token goes out with its chunk, finished or not
    assert out[1:6] == ["Hello ", "there, ", "how ", "are ", "you?"]
    assert "".join(out) == "Hello there, how are you?"
    # tokens as models stream them: only what could still become a key waits
    pieces = ["Your", " key", " is", " sk", "-proj", "-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", " ok"]
    out = run(pieces, REDACTOR[:1])
    assert out[1:8] == ["Your", " key", " is", " ", "", "", "<OPENAI_API_KEY> ok"]
    # a two-word deny-list phrase holds back one finished word, no more
    out = run(["Hello ", "there, ", "how ", "are ", "you?"])
    assert out[1:6] == ["", "Hello ", "there, ", "how ", ""]


def test_block_in_a_stream_raises_a_gateway_error() -> None:
    chain = [build_guardrail("secrets", SecretsGuardrail(type="secrets", action="block"))]
    with pytest.raises(GatewayError) as info:
        run([ANSWER[:20], ANSWER[20:]], chain)
    assert info.value.code == "guardrail_secrets"
    assert KEY not in info.value.message


async def test_input_redaction_edits_a_copy() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"key {KEY}"}]}],
    }
    ctx = RequestContext("r", "POST", "/")
    ctx.request_body = body
    guarded = await guard_input(ctx, body, REDACTOR)
    assert guarded["messages"][0]["content"][0]["text"] == "key <OPENAI_API_KEY>"
    assert body["messages"][0]["content"][0]["text"] == f"key {KEY}"
    assert [(v.guardrail, v.action, v.entities) for v in ctx.verdicts] == [
        ("secrets", "redact", {"OPENAI_API_KEY": 1}),
        ("deny", "pass", {}),
    ]
