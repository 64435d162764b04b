"""Bad client input gets a 4xx in OpenAI's error JSON, never a 500: wrong types for every
field the gateway reads, deep nesting, wrong media types, and (over raw sockets) clients
that break the protocol."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import Settings
from tests.conftest import GatewayServer
from tests.faults.conftest import CHAT, gateway_on, request_rows
from tests.faults.raw_upstream import RawUpstream, json_answer

OK = orjson.dumps({"id": "c", "object": "chat.completion", "model": "up",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"},
                                "finish_reason": "stop"}]})  # fmt: skip
WRONG_VALUES: list[Any] = [[1], "x", 7, 7.5, True, {"a": 1}, -1, 1e300, ""]
FIELDS = ["stream", "stream_options", "n", "max_tokens", "max_completion_tokens",
          "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty",
          "messages", "model", "user", "metadata", "tools", "response_format", "logprobs",
          "top_logprobs"]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("input")
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp) as (gw, client):
        yield gw, client


def test_no_wrong_type_in_any_field_is_a_500(served: tuple[GatewayServer, httpx.Client]) -> None:
    _, client = served
    for field, value in itertools.product(FIELDS, WRONG_VALUES):
        for stream in (False, True):
            body = {**CHAT, "stream": stream, field: value}
            r = client.post("/v1/chat/completions", json=body)
            if body["stream"] is True and r.status_code == 502:
                # a valid stream request to an upstream that answers JSON only: its error
                assert r.json()["error"]["code"] == "upstream_unreachable"
                continue
            assert r.status_code < 500, (field, value, stream, r.text)
            if r.status_code >= 400:
                error = r.json()["error"]
                assert error["message"] and error["type"], (field, value)


@pytest.mark.parametrize(
    ("patch", "param", "code"),
    [
        ({"stream_options": [1], "stream": True}, "stream_options", "invalid_type"),
        ({"stream_options": "x", "stream": True}, "stream_options", "invalid_type"),
        ({"stream_options": 7, "stream": True}, "stream_options", "invalid_type"),
        ({"stream_options": True, "stream": True}, "stream_options", "invalid_type"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
        ({"messages": []}, "messages", "empty_array"),
        ({"max_tokens": 100.0}, "max_tokens", "invalid_type"),
        ({"max_completion_tokens": "100"}, "max_completion_tokens", "invalid_type"),
        ({"max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({"stream": "yes"}, "stream", "invalid_type"),
        ({"n": 0}, "n", "integer_below_min_value"),
        ({"n": 1.5}, "n", "invalid_type"),
        ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
        ({"temperature": -0.1}, "temperature", "decimal_below_min_value"),
        ({"top_p": 1.1}, "top_p", "decimal_above_max_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
        ({"stop": [1]}, "stop", "invalid_type"),
    ],
)
def test_openai_types_and_ranges(
    served: tuple[GatewayServer, httpx.Client], patch: dict[str, Any], param: str, code: str
) -> None:
    _, client = served
    r = client.post("/v1/chat/completions", json={**CHAT, **patch})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {**r.json()["error"], "param": param, "code": code,
                                 "type": "invalid_request_error"}  # fmt: skip


def test_other_fields_pass_through(served: tuple[GatewayServer, httpx.Client]) -> None:
    _, client = served
    body = {**CHAT, "reasoning_effort": "low", "modalities": ["text"], "x_future": {"a": [1]}}
    assert client.post("/v1/chat/completions", json=body).status_code == 200


@pytest.mark.parametrize("depth", [256, 300, 1000, 5000])
def test_deep_nesting_is_400(served: tuple[GatewayServer, httpx.Client], depth: int) -> None:
    _, client = served
    nested = "[" * depth + "]" * depth
    for where in (f'"metadata": {{"a": {nested}}}', f'"x_field": {nested}'):
        raw = '{"model": "m", "messages": [{"role": "user", "content": "hi"}], ' + where + "}"
        r = client.post("/v1/chat/completions", content=raw,
                        headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 400, (depth, r.text[:200])
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_moderate_nesting_passes(served: tuple[GatewayServer, httpx.Client]) -> None:
    _, client = served
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(100):  # 200 levels: within what orjson writes back
        schema = {"type": "object", "properties": {"a": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    assert client.post("/v1/chat/completions", json={**CHAT, "tools": tools}).status_code == 200


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("multipart/form-data; boundary=x", 415),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/jsonp", 415),
        ("text/json-ish", 415),
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
        ("application/vnd.api+json", 200),
    ],
)
def test_media_type_is_parsed(
    served: tuple[GatewayServer, httpx.Client], content_type: str, status: int
) -> None:
    _, client = served
    r = client.post("/v1/chat/completions", content=orjson.dumps(CHAT),
                    headers={"content-type": content_type})  # fmt: skip
    assert r.status_code == status
    if status == 415:
        assert r.json()["error"]["code"] == "unsupported_media_type"


def test_embeddings_and_completions_fields(served: tuple[GatewayServer, httpx.Client]) -> None:
    _, client = served
    r = client.post("/v1/embeddings", json={"model": "m", "input": "a", "encoding_format": "hex"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "encoding_format"
    r = client.post("/v1/completions", json={"model": "m", "prompt": "a", "max_tokens": 1.5})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


def test_rows_record_the_refusals(tmp_path: Path) -> None:
    with RawUpstream(json_answer(OK)) as up, gateway_on(up, tmp_path) as (_, client):
        client.post("/v1/chat/completions", json={**CHAT, "stream_options": [1], "stream": True})
    assert request_rows(tmp_path, "status, error_type") == [(400, "invalid_type")]


FUZZ_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 1e308, "", "x", "\u0000", [], [1], ["a"],
                          [{}], [{"role": "user"}], {}, {"a": 1}, {"type": "text"}, [[[]]],
                          "a" * 1000]  # fmt: skip
FUZZ_KEYS = ["model", "messages", "stream", "stream_options", "n", "max_tokens",
             "max_completion_tokens", "temperature", "top_p", "stop", "seed", "user",
             "metadata", "tools", "tool_choice", "response_format", "logprobs", "prompt",
             "input", "encoding_format", "dimensions", "functions", "x"]  # fmt: skip
PARTS: list[Any] = [*FUZZ_VALUES, [{"type": "text", "text": "hi"}], [{"type": "image_url"}],
                    [1, "x"]]  # fmt: skip
GUARDED = """\
guardrails:
  pii: {type: pii, action: redact, reversible: true}
  secrets: {type: secrets}
  lim: {type: limits, max_input_tokens: 1000, max_messages: 20, max_output_tokens: 50}
  deny: {type: deny_list, keywords: [forbidden]}
  js: {type: json_schema, action: warn}
"""


def mutate(rng: random.Random, body: dict[str, Any]) -> dict[str, Any]:
    body = orjson.loads(orjson.dumps(body))
    for _ in range(rng.randint(1, 4)):
        key, roll = rng.choice(FUZZ_KEYS), rng.random()
        messages = body.get("messages")
        if roll < 0.2:
            body.pop(key, None)
        elif roll < 0.4 and isinstance(messages, list) and messages:
            message = rng.choice(messages)
            if isinstance(message, dict):
                field = rng.choice(["role", "content", "name", "tool_calls", "tool_call_id"])
                message[field] = rng.choice(PARTS)
        else:
            body[key] = rng.choice(FUZZ_VALUES)
    return body


def test_fuzzed_bodies_through_every_guardrail_never_500(tmp_path: Path) -> None:
    """Random wrong types in the fields of chat, completions and embeddings bodies (fields
    an operation does not use included), through input and output guardrails."""
    policy = tmp_path / "policy.yaml"
    with RawUpstream(json_answer(OK)) as up:
        policy.write_text(
            GUARDED.replace("guardrails:", "version: 1\nguardrails:")
            + f"""\
providers:
  raw: {{type: openai, base_url: "{up.base_url}"}}
models:
  m: {{provider: raw, upstream_model: up, guardrails: {{input: [pii, secrets, lim, deny],
                                                      output: [pii, secrets, js]}}}}
"""
        )
        settings = Settings(policy_path=str(policy), watch_policy=False, access_log=False)
        with GatewayServer(settings) as gw, httpx.Client(base_url=gw.base_url, timeout=30) as c:
            rng = random.Random(7)
            bases: dict[str, dict[str, Any]] = {
                "/v1/chat/completions": {"model": "m", "messages": [
                    {"role": "user", "content": "hi jane@example.com"}]},
                "/v1/completions": {"model": "m", "prompt": "hi"},
                "/v1/embeddings": {"model": "m", "input": "hi"},
            }  # fmt: skip
            for _ in range(600):
                path = rng.choice(list(bases))
                body = mutate(rng, bases[path])
                r = c.post(path, content=orjson.dumps(body),
                           headers={"content-type": "application/json"})  # fmt: skip
                assert r.status_code < 500 or r.json()["error"]["code"] == (
                    "upstream_invalid_response"  # the canned answer fits chat, not all
                ), (path, body, r.text)
