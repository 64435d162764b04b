"""`POST /v1/feedback`: declared metrics only, values of their type, a key's own requests
only, a second value replaces the first (history kept), joinable to `requests`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.mock_upstream import MockUpstream
from gateway.app import Settings
from tests.conftest import GatewayServer, wait_rows
from tests.prompts.conftest import PolicyDir

KEYS = """\
auth:
  keys:
    - {{id: team-a, sha256: {a}}}
    - {{id: team-b, sha256: {b}}}
""".format(a=hashlib.sha256(b"key-a").hexdigest(), b=hashlib.sha256(b"key-b").hexdigest())
A = {"authorization": "Bearer key-a"}
B = {"authorization": "Bearer key-b"}
VARS = json.dumps({"product": "Acme", "question": "Where?"})


@pytest.fixture
def gw(policy_dir: PolicyDir, mock: MockUpstream) -> Iterator[GatewayServer]:
    root = policy_dir(extra=KEYS)
    with GatewayServer(Settings(policy_path=str(root), watch_policy=False)) as server:
        yield server


def ask(gw: GatewayServer, headers: dict[str, str], user: str = "u1") -> httpx.Response:
    r = httpx.post(gw.v1 + "/chat/completions", headers=headers, json={
        "model": "prompt:support-reply@experiment", "messages": [], "user": user,
        "metadata": {"prompt_variables": VARS},
    })  # fmt: skip
    assert r.status_code == 200, r.text
    return r


def feedback(gw: GatewayServer, headers: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(gw.v1 + "/feedback", headers=headers, json=body)


def test_feedback_is_stored_replaced_and_joinable(gw: GatewayServer, tmp_path: Path) -> None:
    request_id = ask(gw, A).headers["x-request-id"]
    r = feedback(gw, A, request_id=request_id, metric="resolved", value=False)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "feedback" and r.json()["request_id"] == request_id
    assert feedback(gw, A, request_id=request_id, metric="resolved", value=True,
                    comment="fixed after all").status_code == 200  # fmt: skip
    assert feedback(gw, A, request_id=request_id, metric="rating", value=4.5).status_code == 200
    assert (
        feedback(gw, A, request_id=request_id, metric="tone", value="friendly").status_code == 200
    )
    db = tmp_path / "requests.duckdb"
    history = wait_rows(db, "SELECT metric, value FROM feedback_history ORDER BY created_at", 4)
    assert history == [("resolved", 0.0), ("resolved", 1.0), ("rating", 4.5), ("tone", None)]
    latest = wait_rows(
        db,
        """
        SELECT f.metric, f.value, f.category, f.comment, f.key_id, r.experiment, r.arm
        FROM feedback f JOIN requests r USING (request_id) ORDER BY f.metric""",
        3,
    )
    arm = latest[0][6]
    assert latest == [
        ("rating", 4.5, None, None, "team-a", "reply-tone", arm),
        ("resolved", 1.0, None, "fixed after all", "team-a", "reply-tone", arm),
        ("tone", None, "friendly", None, "team-a", "reply-tone", arm),
    ]


def test_the_response_id_or_the_x_request_id_header_names_the_request(gw: GatewayServer) -> None:
    answer = ask(gw, A)
    r = feedback(gw, A, request_id=answer.json()["id"], metric="resolved", value=True)
    assert r.status_code == 200 and r.json()["request_id"] == answer.headers["x-request-id"]
    request_id = answer.headers["x-request-id"]
    r = feedback(gw, {**A, "x-request-id": request_id}, metric="rating", value=3)
    assert r.status_code == 200 and r.json()["request_id"] == request_id


def test_a_key_gives_feedback_on_its_own_requests_only(gw: GatewayServer) -> None:
    request_id = ask(gw, A).headers["x-request-id"]
    r = feedback(gw, B, request_id=request_id, metric="resolved", value=True)
    assert r.status_code == 403 and r.json()["error"]["param"] == "request_id"
    assert feedback(gw, {}, request_id=request_id, metric="resolved", value=True).status_code == 401
    r = feedback(gw, {"authorization": "Bearer wrong"}, request_id=request_id, metric="resolved",
                 value=True)  # fmt: skip
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"metric": "nope", "value": True}, 400, "metric", "unknown_metric"),
        ({"metric": "resolved", "value": 1}, 400, "value", "invalid_value"),
        ({"metric": "resolved", "value": "yes"}, 400, "value", "invalid_value"),
        ({"metric": "rating", "value": 6}, 400, "value", "invalid_value"),
        ({"metric": "rating", "value": 0.5}, 400, "value", "invalid_value"),
        ({"metric": "rating", "value": True}, 400, "value", "invalid_value"),
        ({"metric": "rating", "value": "4"}, 400, "value", "invalid_value"),
        ({"metric": "tone", "value": "angry"}, 400, "value", "invalid_value"),
        ({"metric": "resolved"}, 400, "value", "missing_required_parameter"),
        ({"value": True}, 400, "metric", "missing_required_parameter"),
        ({"metric": "resolved", "value": True, "comment": 5}, 400, "comment", "invalid_type"),
        ({"metric": "resolved", "value": True, "extra": 1}, 400, "extra", "unknown_parameter"),
        (
            {"metric": "resolved", "value": True, "request_id": "nope"},
            404,
            "request_id",
            "request_not_found",
        ),
    ],
)
def test_bad_feedback_is_an_openai_error(gw: GatewayServer, body: dict[str, Any], status: int,
                                         param: str, code: str) -> None:  # fmt: skip
    request_id = ask(gw, A).headers["x-request-id"]
    r = feedback(gw, A, **{"request_id": request_id, **body})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["code"] == code and error["message"]


def test_malformed_bodies_are_400(gw: GatewayServer) -> None:
    for content in (b"{nope", b"[1]"):
        r = httpx.post(gw.v1 + "/feedback", headers={**A, "content-type": "application/json"},
                       content=content)  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_feedback_on_a_request_only_in_the_log(policy_dir: PolicyDir, mock: MockUpstream,
                                               tmp_path: Path) -> None:  # fmt: skip
    """After a restart the recent requests are gone: the log still knows the owner."""
    root = policy_dir(extra=KEYS)
    with GatewayServer(Settings(policy_path=str(root), watch_policy=False)) as first:
        request_id = ask(first, A).headers["x-request-id"]
    with GatewayServer(Settings(policy_path=str(root), watch_policy=False)) as second:
        assert (
            feedback(second, B, request_id=request_id, metric="resolved", value=True).status_code
            == 403
        )
        r = feedback(second, A, request_id=request_id, metric="resolved", value=True)
        assert r.status_code == 200, r.text
    rows = wait_rows(tmp_path / "requests.duckdb", "SELECT request_id FROM feedback", 1)
    assert rows == [(request_id,)]


def test_feedback_off_without_metrics(write_policy: Any) -> None:
    with GatewayServer(Settings(policy_path=str(write_policy()), watch_policy=False)) as gw:
        r = feedback(gw, {}, request_id="x", metric="resolved", value=True)
    assert r.status_code == 404 and r.json()["error"]["code"] == "feedback_disabled"
