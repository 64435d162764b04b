"""Arm assignment: a hash of experiment and unit, stable across restarts and processes;
the split follows the shares; thompson moves traffic toward the better arm on feedback
while every arm keeps its floor."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.mock_upstream import MockUpstream
from gateway.policy.experiments import ExperimentConfig, FeedbackMetric
from gateway.prompts import ArmStats, build_allocator
from gateway.prompts.assign import pick_arm, unit_point
from tests.conftest import gateway_process
from tests.prompts.conftest import PolicyDir


def config(
    arms: dict[str, float], allocation: str = "fixed", floor: float = 0.05
) -> ExperimentConfig:
    return ExperimentConfig(prompt="p", arms=arms, metric="m", allocation=allocation, floor=floor)  # type: ignore[arg-type]


BOOLEAN = FeedbackMetric(type="boolean")


@pytest.mark.parametrize(
    "arms", [{"3": 0.5, "4": 0.5}, {"a": 0.2, "b": 0.3, "c": 0.5}, {"x": 1, "y": 3}]
)
def test_the_split_follows_the_shares_within_3_percent(arms: dict[str, float]) -> None:
    experiment = config(arms)
    shares = build_allocator(experiment, BOOLEAN).shares()
    counts = Counter(pick_arm(shares, unit_point("reply-tone", f"user-{i}")) for i in range(5000))
    total = sum(arms.values())
    for arm, share in arms.items():
        assert abs(counts[arm] / 5000 - share / total) <= 0.03, (arm, counts)


def test_a_unit_always_gets_the_same_point_and_experiments_are_independent() -> None:
    assert unit_point("reply-tone", "alice") == unit_point("reply-tone", "alice")
    same = sum(
        (unit_point("a", f"u{i}") < 0.5) == (unit_point("b", f"u{i}") < 0.5) for i in range(2000)
    )
    assert 900 < same < 1100  # another experiment's split is not correlated with this one
    assert unit_point("x", None) != unit_point("x", None)  # no unit: random


def simulate(allocation: str, rates: dict[str, float], rounds: int = 20, per_round: int = 200,
             seed: int = 7) -> list[dict[str, float]]:  # fmt: skip
    """Units arrive, get an arm from the current shares, give boolean feedback with the
    arm's true rate; the allocator sees the totals after each round."""
    rng = np.random.default_rng(seed)
    allocator = build_allocator(config(dict.fromkeys(rates, 1.0), allocation), BOOLEAN)
    stats = {arm: [0, 0.0] for arm in rates}
    history = []
    for r in range(rounds):
        shares = allocator.shares()
        history.append(shares)
        for i in range(per_round):
            arm = pick_arm(shares, unit_point("sim", f"{r}-{i}"))
            success = float(rng.random() < rates[arm])
            stats[arm][0] += 1
            stats[arm][1] += success
        allocator.update({a: ArmStats(int(n), s, s) for a, (n, s) in stats.items()})
    return history


def test_thompson_shifts_toward_the_better_arm_and_keeps_the_floor() -> None:
    history = simulate("thompson", {"3": 0.30, "4": 0.45, "5": 0.30})
    assert history[0] == pytest.approx({"3": 1 / 3, "4": 1 / 3, "5": 1 / 3})
    final = history[-1]
    assert final["4"] > 0.8
    for shares in history:
        assert sum(shares.values()) == pytest.approx(1)
        assert min(shares.values()) >= 0.05 - 1e-12


def test_fixed_allocation_ignores_feedback() -> None:
    history = simulate("fixed", {"3": 0.1, "4": 0.9}, rounds=3)
    assert all(h == {"3": 0.5, "4": 0.5} for h in history)


def test_thompson_on_a_float_metric_with_direction_min() -> None:
    metric = FeedbackMetric(type="float", min=0, max=10, direction="min")
    allocator = build_allocator(config({"a": 1, "b": 1}, "thompson", floor=0.1), metric)
    rng = np.random.default_rng(1)
    a, b = rng.normal(3, 1, 300), rng.normal(4, 1, 300)
    allocator.update({"a": ArmStats(300, float(a.sum()), float((a * a).sum())),
                      "b": ArmStats(300, float(b.sum()), float((b * b).sum()))})  # fmt: skip
    shares = allocator.shares()
    assert shares["a"] == pytest.approx(0.9, abs=0.01) and shares["b"] == pytest.approx(
        0.1, abs=0.01
    )


def arms_by_user(base: str, users: list[str]) -> dict[str, str]:
    out = {}
    variables = json.dumps({"product": "Acme", "question": "Where?"})
    for user in users:
        r = httpx.post(base + "/v1/chat/completions", timeout=10, json={
            "model": "prompt:support-reply@experiment", "messages": [], "user": user,
            "metadata": {"prompt_variables": variables},
        })  # fmt: skip
        assert r.status_code == 200, r.text
        out[user] = r.json()["model"]  # up-chat (version 3) or up-small (version 4)
    return out


def test_same_user_same_arm_across_two_processes_and_a_restart(
    policy_dir: PolicyDir, mock: MockUpstream, tmp_path: Path
) -> None:
    root = policy_dir()
    users = [f"user-{i}" for i in range(40)]
    with (gateway_process(root, tmp_path / "a.log") as a,
          gateway_process(root, tmp_path / "b.log") as b):  # fmt: skip
        first, second = arms_by_user(a, users), arms_by_user(b, users)
    assert first == second
    assert set(first.values()) == {"up-chat", "up-small"}
    with gateway_process(root, tmp_path / "c.log") as c:
        assert arms_by_user(c, users) == first


def test_a_running_gateway_moves_thompson_shares_on_feedback(
    policy_dir: PolicyDir, mock: MockUpstream
) -> None:
    from gateway.app import Settings
    from tests.conftest import GatewayServer

    root = policy_dir(allocation="thompson")
    text = (root / "policy.yaml").read_text().replace("allocation: thompson",
                                                      "allocation: thompson\n    refresh_s: 0.1")  # fmt: skip
    (root / "policy.yaml").write_text(text)
    with GatewayServer(Settings(policy_path=str(root), watch_policy=False)) as gw:
        shares = httpx.get(gw.v1 + "/gateway/experiments").json()["experiments"][0]["arms"]
        assert [a["share"] for a in shares] == [0.5, 0.5]
        variables = json.dumps({"product": "Acme", "question": "Where?"})
        for i in range(60):
            r = httpx.post(gw.v1 + "/chat/completions", json={
                "model": "prompt:support-reply@experiment", "messages": [], "user": f"u{i}",
                "metadata": {"prompt_variables": variables},
            })  # fmt: skip
            good = r.json()["model"] == "up-small"  # version 4 resolves, 3 does not
            httpx.post(gw.v1 + "/feedback", json={"request_id": r.headers["x-request-id"],
                                                  "metric": "resolved", "value": good})  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            arms = httpx.get(gw.v1 + "/gateway/experiments").json()["experiments"][0]["arms"]
            share = {a["arm"]: a["share"] for a in arms}
            if share["4"] > 0.9:
                break
            assert time.monotonic() < deadline, share
            time.sleep(0.1)
        assert share["3"] >= 0.05 - 1e-9  # the floor


def test_units_fall_back_from_user_to_session() -> None:
    from gateway.prompts.stage import unit_of

    session = {"metadata": {"session_id": "s-1"}}
    assert unit_of("user", {"user": "u-1", **session}, {}) == "u-1"
    assert unit_of("user", session, {}) == "s-1"  # no user: its session
    assert unit_of("session", {"user": "u-1", **session}, {}) == "s-1"
    assert unit_of("session", {}, {"x-gateway-session": "h-1"}) == "h-1"
    assert unit_of("user", {}, {}) is None and unit_of("request", {"user": "u"}, {}) is None
