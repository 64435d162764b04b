"""Guardrails through a real gateway: block, redact, warn on input and output, streams too."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from tests.conftest import PolicyWriter, serving

KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
GUARDRAILS = """
guardrails:
  secrets-block: {type: secrets, action: block}
  secrets-redact: {type: secrets, action: redact}
  titan: {type: deny_list, action: warn, keywords: [project titan]}
  limits: {type: limits, max_messages: 3}
  pii: {type: pii, action: redact, entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD]}
"""
MODELS = {
    "strict": ("mock", "up-strict"),
    "redacting": ("mock", "up-redacting"),
    "claude-redacting": ("claude", "claude-up"),
}


CHAINS = {
    "strict": "{input: [limits, secrets-block, titan], output: [secrets-block]}",
    "redacting": "{input: [secrets-redact], output: [secrets-redact]}",
    "claude-redacting": "{input: [pii], output: [secrets-redact]}",
}


@pytest.fixture
def gw(write_policy: PolicyWriter) -> Iterator[httpx.Client]:
    path = write_policy(MODELS, extra=GUARDRAILS, guardrails=CHAINS)
    with serving(path) as c:
        yield c


def chat(model: str, text: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_input_block_never_reaches_the_upstream_nor_echoes(
    gw: httpx.Client, mock: MockUpstream
) -> None:
    client = gw
    r = client.post("/v1/chat/completions", json=chat("strict", f"use {KEY} please"))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "guardrail_secrets-block"
    assert KEY not in r.text and KEY[:10] not in r.text
    assert mock.requests == []
    r = client.post(
        "/v1/chat/completions",
        json={"model": "strict", "messages": [{"role": "user", "content": "x"}] * 4},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "guardrail_limits"


def test_input_redaction_and_warning(gw: httpx.Client, mock: MockUpstream) -> None:
    client = gw
    r = client.post("/v1/chat/completions", json=chat("redacting", f"my key {KEY} ok"))
    assert r.status_code == 200
    assert mock.requests[-1].body["messages"][0]["content"] == "my key <OPENAI_API_KEY> ok"
    r = client.post("/v1/chat/completions", json=chat("strict", "tell me about Project Titan"))
    assert r.status_code == 200 and r.headers["x-gateway-guardrail-warnings"] == "titan"


@pytest.mark.parametrize("model", ["redacting", "claude-redacting"])
def test_output_redaction_whole_and_streamed(
    gw: httpx.Client, mock: MockUpstream, model: str
) -> None:
    client = gw
    mock.behave(MODELS[model][1], Behavior(text=f"Here it is: {KEY} keep it safe"))
    whole = client.post("/v1/chat/completions", json=chat(model, "key?")).json()
    assert whole["choices"][0]["message"]["content"] == "Here it is: <OPENAI_API_KEY> keep it safe"
    streamed = client.post("/v1/chat/completions", json=chat(model, "key?", stream=True)).text
    assert KEY[:8] not in streamed
    chunks = [orjson.loads(e[6:]) for e in streamed.split("\n\n") if e.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Here it is: <OPENAI_API_KEY> keep it safe"


def test_output_block_ends_a_stream_with_an_error_event(
    gw: httpx.Client, mock: MockUpstream
) -> None:
    client = gw
    mock.behave("up-strict", Behavior(text=f"the key is {KEY} bye"))
    r = client.post("/v1/chat/completions", json=chat("strict", "key?"))
    assert r.status_code == 400 and KEY not in r.text
    streamed = client.post(
        "/v1/chat/completions",
        json=chat("strict", "key?", stream=True),
        headers={"x-request-id": "blocked-stream"},
    ).text
    assert KEY[:8] not in streamed
    last = orjson.loads([e for e in streamed.split("\n\n") if e][-1][6:])
    assert last["error"]["code"] == "guardrail_secrets-block"


def test_verdicts_reach_the_request_log(
    write_policy: PolicyWriter, mock: MockUpstream, tmp_path: Path
) -> None:
    db = tmp_path / "requests.duckdb"
    telemetry = f"telemetry:\n  duckdb: {db}\n  flush_interval_s: 0.1\n"
    path = write_policy(MODELS, extra=GUARDRAILS + telemetry, guardrails=CHAINS)
    with serving(path) as c:
        c.post(
            "/v1/chat/completions",
            json=chat("strict", f"use {KEY}"),
            headers={"x-request-id": "g1"},
        )
        c.post(
            "/v1/chat/completions",
            json=chat("redacting", f"use {KEY}"),
            headers={"x-request-id": "g2"},
        )
    con = duckdb.connect(str(db), read_only=True)
    found = dict(con.execute("SELECT request_id, guardrails FROM requests").fetchall())
    con.close()
    blocked = orjson.loads(str(found["g1"]))
    assert [(v["guardrail"], v["action"]) for v in blocked] == [
        ("limits", "pass"),
        ("secrets-block", "block"),
    ]
    assert blocked[1]["entities"] == {"OPENAI_API_KEY": 1}
    redacted = orjson.loads(str(found["g2"]))
    assert [(v["guardrail"], v["stage"], v["action"]) for v in redacted] == [
        ("secrets-redact", "input", "redact"),
        ("secrets-redact", "output", "pass"),
    ]
    assert KEY not in str(found)


def test_pii_is_redacted_before_the_upstream_sees_it(gw: httpx.Client, mock: MockUpstream) -> None:
    r = gw.post(
        "/v1/chat/completions",
        json=chat("claude-redacting", "I am jane.doe@example.com, call +1 415 555 0132"),
    )
    assert r.status_code == 200
    sent = mock.requests[-1].body["messages"][0]["content"]
    assert sent == [{"type": "text", "text": "I am <EMAIL_ADDRESS>, call <PHONE_NUMBER>"}]


@pytest.fixture
def webhooked(write_policy: PolicyWriter, mock: MockUpstream) -> Iterator[httpx.Client]:
    extra = f"""
guardrails:
  hook-closed: {{type: webhook, url: "{mock.base_url}/guardrail", timeout_s: 0.5, action: redact}}
  hook-open: {{type: webhook, url: "{mock.base_url}/guardrail", timeout_s: 0.5, action: block, on_error: open}}
"""
    chains = {
        "closed": "{input: [hook-closed], output: [hook-closed]}",
        "open": "{input: [hook-open]}",
    }
    models = {"closed": ("mock", "up-closed"), "open": ("mock", "up-open")}
    path = write_policy(models, extra=extra, guardrails=chains)
    with serving(path) as c:
        yield c


def test_webhook_verdicts_apply_and_failures_follow_on_error(
    webhooked: httpx.Client, mock: MockUpstream
) -> None:
    r = webhooked.post("/v1/chat/completions", json=chat("closed", "this is forbidden stuff"))
    assert r.status_code == 200
    assert mock.requests[-1].body["messages"][0]["content"] == "this is <FORBIDDEN> stuff"
    assert mock.webhook_texts[0] == "this is forbidden stuff"
    r = webhooked.post("/v1/chat/completions", json=chat("open", "forbidden"))
    assert r.status_code == 400 and r.json()["error"]["code"] == "guardrail_hook-open"
    # failures: closed blocks, open passes; a stalled webhook times out the same way
    for text in ("please explode", "please stall"):
        assert webhooked.post("/v1/chat/completions", json=chat("closed", text)).status_code == 400
        assert webhooked.post("/v1/chat/completions", json=chat("open", text)).status_code == 200
    # output through the webhook, streamed: it rules on the whole answer
    mock.behave("up-closed", Behavior(text="a forbidden answer"))
    streamed = webhooked.post("/v1/chat/completions", json=chat("closed", "hi", stream=True)).text
    chunks = [orjson.loads(e[6:]) for e in streamed.split("\n\n") if e.startswith("data: {")]
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "a <FORBIDDEN> answer"
    )


def test_per_key_chains_add_to_the_models(write_policy: PolicyWriter, mock: MockUpstream) -> None:
    from gateway.auth import hash_key

    keys = f"""
auth:
  keys:
    - {{id: strict-team, sha256: {hash_key("key-a")}, guardrails: {{input: [secrets-block]}}}}
    - {{id: other-team, sha256: {hash_key("key-b")}}}
"""
    path = write_policy({"plain": ("mock", "up-plain")}, extra=GUARDRAILS + keys)
    with serving(path) as c:
        body = chat("plain", f"here: {KEY}")
        blocked = c.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer key-a"}
        )
        assert (
            blocked.status_code == 400
            and blocked.json()["error"]["code"] == "guardrail_secrets-block"
        )
        assert (
            c.post(
                "/v1/chat/completions", json=body, headers={"authorization": "Bearer key-b"}
            ).status_code
            == 200
        )


def test_unknown_guardrail_on_a_key_is_a_policy_error() -> None:
    from gateway.policy.loader import PolicyError, parse_texts

    text = (
        "version: 1\nauth:\n  keys:\n    - id: a\n      sha256: '"
        + "0" * 64
        + "'\n      guardrails: {input: [nope]}\n"
    )
    with pytest.raises(PolicyError) as info:
        parse_texts([("p.yaml", text)], {})
    assert str(info.value) == "p.yaml:6: auth.keys[0].guardrails.input[0]: unknown guardrail 'nope'"


def test_json_schema_guardrail_checks_answers_against_the_requested_schema(
    write_policy: PolicyWriter, mock: MockUpstream
) -> None:
    path = write_policy(
        {"structured": ("mock", "up-structured")},
        extra="guardrails:\n  schema: {type: json_schema}\n",
        guardrails={"structured": "{output: [schema]}"},
    )
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    asked = chat("structured", "capital of France?", response_format=response_format)
    with serving(path) as c:
        mock.behave("up-structured", Behavior(text='{"city": "Paris"}'))
        assert c.post("/v1/chat/completions", json=asked).status_code == 200
        mock.behave("up-structured", Behavior(text='{"town": "Paris"}'))
        r = c.post("/v1/chat/completions", json=asked)
        assert r.status_code == 400 and r.json()["error"]["code"] == "guardrail_schema"
        assert "SCHEMA_VIOLATION" in r.json()["error"]["message"]
        streamed = c.post("/v1/chat/completions", json={**asked, "stream": True}).text
        last = orjson.loads([e for e in streamed.split("\n\n") if e][-1][6:])
        assert last["error"]["code"] == "guardrail_schema"
        mock.behave("up-structured", Behavior(text="Paris, of course"))
        assert c.post("/v1/chat/completions", json=asked).status_code == 400  # not JSON at all
        assert (
            c.post("/v1/chat/completions", json=chat("structured", "hi")).status_code == 200
        )  # no schema asked
