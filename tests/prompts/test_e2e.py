"""`model: "prompt:NAME@REF"` end to end with the openai SDK: the rendered messages reach
the mock upstream, the request log and span carry prompt, version, experiment and arm,
and labels move on hot reload."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from benchmarks.mock_upstream import MockUpstream
from gateway.app import Settings
from tests.conftest import GatewayServer, wait_rows
from tests.prompts.conftest import PROMPT, PolicyDir
from tests.telemetry.otlp_receiver import HttpReceiver
from tests.telemetry.test_otel import SERVER, otel_env, wait_for

__all__ = ["otel_env"]  # a fixture, used by name
VARS = {"product": "Acme", "question": "Where is my order?"}


@contextmanager
def gateway(root: Path, watch: bool = False) -> Iterator[tuple[GatewayServer, openai.OpenAI]]:
    with (
        GatewayServer(Settings(policy_path=str(root), watch_policy=watch)) as gw,
        openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as client,
    ):
        yield gw, client


def ask(client: openai.OpenAI, model: str, variables: dict[str, Any] | None = None,
        **kwargs: Any) -> Any:  # fmt: skip
    metadata = {"prompt_variables": json.dumps(variables if variables is not None else VARS)}
    return client.chat.completions.create(model=model, messages=kwargs.pop("messages", []),
                                          metadata=metadata, **kwargs)  # fmt: skip


def test_the_rendered_prompt_reaches_the_upstream(
    policy_dir: PolicyDir, mock: MockUpstream
) -> None:
    root = policy_dir(experiment=False)
    with gateway(root) as (_, client):
        answer = ask(client, "prompt:support-reply@production", temperature=0.9, max_tokens=5,
                     messages=[{"role": "assistant", "content": "Hi!"},
                               {"role": "user", "content": "It is late."}], user="u1")  # fmt: skip
    assert answer.choices[0].message.content
    sent = mock.requests[-1].body
    assert sent["model"] == "up-chat"
    assert sent["messages"] == [
        {"role": "system", "content": "You are a support agent for Acme. Answer in English."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "It is late."},
    ]
    assert sent["temperature"] == 0.9  # overridable
    assert sent["max_tokens"] == 400  # the version's: not overridable
    assert sent["user"] == "u1"
    assert "metadata" not in sent  # the variables are not sent on


def test_refs_header_variables_and_the_request_log(policy_dir: PolicyDir, mock: MockUpstream,
                                                   tmp_path: Path) -> None:  # fmt: skip
    root = policy_dir(experiment=False)
    with gateway(root) as (_, client):
        ask(client, "prompt:support-reply@4")
        assert mock.requests[-1].body["model"] == "up-small"
        ask(client, "prompt:support-reply@latest")
        assert mock.requests[-1].body["model"] == "up-small"
        ask(client, "prompt:support-reply")  # no ref: the production label
        assert mock.requests[-1].body["model"] == "up-chat"
        header = json.dumps({"product": "Globex", "question": "Refund?"})
        client.chat.completions.create(
            model="prompt:support-reply@staging", messages=[],
            extra_headers={"x-gateway-prompt-variables": header},
            metadata={"ticket": "T-1"},
        )  # fmt: skip
        sent = mock.requests[-1].body
        assert sent["messages"][0]["content"] == "You are a friendly support agent for Globex."
        assert sent["metadata"] == {"ticket": "T-1"}
    rows = wait_rows(tmp_path / "requests.duckdb",
                    "SELECT model, prompt_name, prompt_version, tags FROM requests ORDER BY started_at")  # fmt: skip
    assert [r[:3] for r in rows] == [
        ("small", "support-reply", "4"), ("small", "support-reply", "4"),
        ("chat", "support-reply", "3"), ("small", "support-reply", "4"),
    ]  # fmt: skip
    assert rows[0][3] is None and json.loads(rows[3][3]) == {"ticket": "T-1"}  # no variables


@pytest.mark.parametrize(
    ("model", "variables", "status", "code"),
    [
        ("prompt:nope@1", VARS, 404, "prompt_not_found"),
        ("prompt:support-reply@9", VARS, 404, "prompt_version_not_found"),
        ("prompt:support-reply@canary", VARS, 404, "prompt_version_not_found"),
        ("prompt:support-reply@experiment", VARS, 404, "experiment_not_found"),
        ("prompt:support-reply@3", {"product": "Acme"}, 400, "invalid_prompt_variables"),
        (
            "prompt:support-reply@3",
            {**VARS, "language": "Klingon"},
            400,
            "invalid_prompt_variables",
        ),
    ],
)
def test_bad_references_and_variables_are_openai_errors(
    policy_dir: PolicyDir, mock: MockUpstream, model: str, variables: dict[str, Any], status: int,
    code: str,
) -> None:  # fmt: skip
    root = policy_dir(experiment=False)
    with gateway(root) as (_, client), pytest.raises(openai.APIStatusError) as caught:
        ask(client, model, variables)
    assert caught.value.status_code == status
    assert caught.value.body["code"] == code  # type: ignore[index]
    assert mock.requests == []  # nothing half-filled went upstream


def test_bad_variable_documents_are_400(policy_dir: PolicyDir, mock: MockUpstream) -> None:
    root = policy_dir(experiment=False)
    with gateway(root) as (gw, _):
        import httpx

        for extra in ({"metadata": {"prompt_variables": "{not json"}},
                      {"metadata": {"prompt_variables": "[1, 2]"}}):  # fmt: skip
            r = httpx.post(gw.v1 + "/chat/completions",
                           json={"model": "prompt:support-reply@3", "messages": [], **extra})  # fmt: skip
            assert (
                r.status_code == 400 and r.json()["error"]["param"] == "metadata.prompt_variables"
            )
        r = httpx.post(gw.v1 + "/chat/completions", json={"model": "prompt:support-reply@3", "messages": []},
                       headers={"x-gateway-prompt-variables": "nope"})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["param"] == "x-gateway-prompt-variables"
        r = httpx.post(
            gw.v1 + "/embeddings", json={"model": "prompt:support-reply@3", "input": "x"}
        )
        assert r.status_code == 400 and "chat templates" in r.json()["error"]["message"]
    assert mock.requests == []


def test_a_label_moves_on_hot_reload(policy_dir: PolicyDir, mock: MockUpstream) -> None:
    root = policy_dir(experiment=False)
    with gateway(root, watch=True) as (_, client):
        ask(client, "prompt:support-reply@production")
        assert mock.requests[-1].body["model"] == "up-chat"
        path = root / "prompts" / "support-reply.yaml"
        path.write_text(PROMPT.replace("production: 3", "production: 4"))
        deadline = time.monotonic() + 10
        while True:
            ask(client, "prompt:support-reply@production")
            if mock.requests[-1].body["model"] == "up-small":
                break
            assert time.monotonic() < deadline, "the label did not move"
            time.sleep(0.1)
        # an edit of a released version is refused: the last good policy keeps serving
        path.write_text(
            PROMPT.replace("production: 3", "production: 4").replace("Answer in", "Say in")
        )
        time.sleep(1.0)
        ask(client, "prompt:support-reply@3")
        assert "Answer in English" in mock.requests[-1].body["messages"][0]["content"]


def test_experiment_arm_on_the_request_log_and_span(
    otel_env: pytest.MonkeyPatch, policy_dir: PolicyDir, mock: MockUpstream, tmp_path: Path
) -> None:
    root = policy_dir()
    with HttpReceiver() as receiver:
        otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        with gateway(root) as (_, client):
            for user in ("alice", "bob", "carol", "dave"):
                ask(client, "prompt:support-reply@experiment", user=user)
            wait_for(receiver.received, 4)
    rows = wait_rows(tmp_path / "requests.duckdb",
                    "SELECT end_user, experiment, arm, prompt_version, model FROM requests ORDER BY end_user")  # fmt: skip
    assert len(rows) == 4
    for _, experiment, arm, version, model in rows:
        assert experiment == "reply-tone" and arm == version
        assert model == {"3": "chat", "4": "small"}[version]
    spans = [s for s in receiver.received.spans if s.kind == SERVER]
    assert {s.attributes["gateway.experiment"] for s in spans} == {"reply-tone"}
    by_user = {r[0]: r[2] for r in rows}
    assert {s.attributes["gateway.experiment.arm"] for s in spans} == set(by_user.values())
    assert all(s.attributes["gateway.prompt.name"] == "support-reply" for s in spans)
