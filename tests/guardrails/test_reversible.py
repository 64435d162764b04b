"""Reversible redaction: the upstream sees numbered placeholders, the client gets its
own values back in the answer, whole or streamed (placeholders split anywhere)."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from gateway.guardrails.chain import redact
from gateway.guardrails.restore import RestoringStream, restore_text
from gateway.guardrails.scanners import Finding
from tests.conftest import PolicyWriter, serving

EMAIL, PHONE = "jane.doe@example.com", "+1 415 555 0132"


def test_same_value_same_placeholder_and_back() -> None:
    text = f"mail {EMAIL} or {EMAIL}, call {PHONE}"
    findings = [Finding(5, 25, "EMAIL_ADDRESS"), Finding(29, 49, "EMAIL_ADDRESS"),
                Finding(56, 71, "PHONE_NUMBER")]  # fmt: skip
    restore: dict[str, str] = {}
    redacted = redact(text, findings, restore)
    assert redacted == "mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_1>, call <PHONE_NUMBER_2>"
    assert restore_text(redacted, restore) == text
    assert restore_text("<EMAIL_ADDRESS_9> stays", restore) == "<EMAIL_ADDRESS_9> stays"


class Chunks:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.headers: dict[str, str] = {}

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, piece in enumerate(self.pieces):
            finish = "stop" if i == len(self.pieces) - 1 else None
            choice = {"index": 0, "delta": {"content": piece}, "finish_reason": finish}
            yield orjson.dumps({"choices": [choice]})

    async def aclose(self) -> None:
        pass


def test_streamed_placeholders_split_at_every_boundary_come_back_whole() -> None:
    restore = {"<EMAIL_ADDRESS_1>": EMAIL}
    answer = "Sure, I will write to <EMAIL_ADDRESS_1> today <3"
    for cut in range(1, len(answer)):
        for cut2 in range(cut + 1, len(answer), 7):
            pieces = [answer[:cut], answer[cut:cut2], answer[cut2:]]

            async def collect(pieces: list[str] = pieces) -> list[str]:
                stream = RestoringStream(Chunks(pieces), restore)
                return [orjson.loads(p)["choices"][0]["delta"]["content"] async for p in stream]

            out = asyncio.run(collect())
            assert "".join(out) == answer.replace("<EMAIL_ADDRESS_1>", EMAIL)
            assert not any("<EMAIL" in piece for piece in out)


@pytest.fixture
def gw(write_policy: PolicyWriter) -> Iterator[httpx.Client]:
    extra = "guardrails:\n  pii: {type: pii, action: redact, reversible: true}\n"
    path = write_policy({"rev": ("mock", "up-rev")}, extra=extra,
                        guardrails={"rev": "{input: [pii]}"})  # fmt: skip
    with serving(path) as client:
        yield client


def test_through_the_proxy_whole_and_streamed(gw: httpx.Client, mock: MockUpstream) -> None:
    mock.behave("up-rev", Behavior(text="I will email <EMAIL_ADDRESS_1> now"))
    body = {"model": "rev", "messages": [{"role": "user", "content": f"Email {EMAIL} please"}]}
    r = gw.post("/v1/chat/completions", json=body)
    assert mock.requests[-1].body["messages"][0]["content"] == "Email <EMAIL_ADDRESS_1> please"
    assert r.json()["choices"][0]["message"]["content"] == f"I will email {EMAIL} now"
    streamed = gw.post("/v1/chat/completions", json={**body, "stream": True}).text
    chunks = [orjson.loads(e[6:]) for e in streamed.split("\n\n") if e.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == f"I will email {EMAIL} now"
