"""`gateway experiments report` on a request log with known effects: its numbers equal
scipy's own functions on the same data, its verdict waits for min_samples and names the
test, and the sequential default keeps its error rate under repeated looks."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from scipy import stats as sp

from gateway.experiments import stats
from gateway.telemetry.schema import migrate

POLICY = """\
version: 1
telemetry: {{duckdb: {db}}}
providers:
  mock: {{type: openai, base_url: "http://127.0.0.1:9/v1"}}
models:
  chat: {{provider: mock, upstream_model: up}}
feedback:
  metrics:
    resolved: {{type: boolean}}
    rating: {{type: float, min: 1, max: 5}}
    latency_feel: {{type: float, direction: min}}
    tone: {{type: category, categories: [formal, friendly, rude]}}
experiments:
  exp:
    prompt: p
    arms: {{"1": 0.5, "2": 0.5}}
    metric: {metric}
    min_samples: {min_samples}
"""
PROMPT = """\
name: p
versions:
  - {version: 1, messages: [{role: user, content: hi}], model: chat}
  - {version: 2, messages: [{role: user, content: hello}], model: chat}
"""
START = datetime(2026, 11, 1)


def write_log(db: Path, values: dict[str, list[Any]], metric: str, seed: int = 0) -> None:
    """One request per value (cost, latency and tokens per arm), one feedback each, the
    arms' values interleaved in a random order of arrival."""
    rng = np.random.default_rng(seed)
    con = duckdb.connect(str(db))
    migrate(con)
    order = rng.permutation([arm for arm, vs in values.items() for _ in vs])
    seen = dict.fromkeys(values, 0)
    for i, arm in enumerate(order):
        value = values[arm][seen[arm]]
        seen[arm] += 1
        at = START + timedelta(seconds=i)
        rid = f"r{i}"
        con.execute(
            "INSERT INTO requests (request_id, started_at, latency_ms, status, cost_usd, "
            "input_tokens, output_tokens, experiment, arm, prompt_name, prompt_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'exp', ?, 'p', ?)",
            [rid, at, 100.0 * int(arm) + i % 10, 200 if i % 50 else 500, 0.001 * int(arm),
             20, 10 * int(arm), arm, arm],
        )  # fmt: skip
        number = None if isinstance(value, str) else float(value)
        category = value if isinstance(value, str) else None
        con.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, NULL, NULL, ?, ?)",
                    [rid, metric, number, category, at, f"fb{i}"])  # fmt: skip
    con.close()


def report(tmp_path: Path, values: dict[str, list[Any]], metric: str, *args: str,
           min_samples: int = 50) -> dict[str, Any]:  # fmt: skip
    db = tmp_path / "requests.duckdb"
    write_log(db, values, metric)
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "p.yaml").write_text(PROMPT)
    (tmp_path / "policy.yaml").write_text(
        POLICY.format(db=db, metric=metric, min_samples=min_samples)
    )
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "experiments", "report", "exp", "--policy",
         str(tmp_path / "policy.yaml"), "--format", "json", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def booleans(rate: float, n: int, seed: int) -> list[bool]:
    return list(np.random.default_rng(seed).random(n) < rate)


def test_boolean_numbers_equal_scipy(tmp_path: Path) -> None:
    a, b = booleans(0.40, 600, 1), booleans(0.55, 600, 2)
    out = report(tmp_path, {"1": a, "2": b}, "resolved", "--test", "fixed")
    assert out["experiment"] == "exp" and out["metric"] == "resolved" and out["control"] == "1"
    assert out["test"] == "two_proportion_z"
    arm1, arm2 = out["arms"]
    assert (arm1["arm"], arm1["n"], arm1["version"]) == ("1", 600, 1)
    for row, values in ((arm1, a), (arm2, b)):
        ci = sp.binomtest(sum(values), len(values)).proportion_ci(0.95, method="wilson")
        assert row["mean"] == pytest.approx(np.mean(values))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
    table = [[sum(b), 600 - sum(b)], [sum(a), 600 - sum(a)]]
    expected = sp.chi2_contingency(table, correction=False).pvalue  # = the z test's, squared
    assert out["p_value"] == pytest.approx(expected, rel=1e-9)
    assert out["lift"] == pytest.approx((np.mean(b) - np.mean(a)) / np.mean(a))
    assert out["significant"] is True and out["best_arm"] == "2"
    assert out["verdict"].startswith("arm 2 beats 1 on resolved: +")
    assert any("fixed-horizon" in w for w in out["warnings"])
    # per-arm requests: cost, latency, tokens, errors
    assert arm2["requests"] == 600 and arm2["cost_usd"] == pytest.approx(1.2)
    assert arm2["output_tokens_mean"] == pytest.approx(20)
    assert 200 <= arm2["latency_p50_ms"] <= arm2["latency_p95_ms"] <= 210
    assert 0 < arm1["error_rate"] < 0.05


def test_small_counts_use_fishers_exact(tmp_path: Path) -> None:
    a, b = [True, False, False, False, False, False], [True, True, True, True, False, True]
    out = report(tmp_path, {"1": a, "2": b}, "resolved", "--test", "fixed", min_samples=5)
    assert out["test"] == "fisher_exact"
    expected = sp.fisher_exact(np.array([[5, 1], [1, 5]])).pvalue
    assert out["p_value"] == pytest.approx(expected)


def test_float_numbers_equal_welch(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a = list(np.clip(rng.normal(3.5, 0.8, 300), 1, 5))
    b = list(np.clip(rng.normal(3.7, 1.1, 250), 1, 5))
    out = report(tmp_path, {"1": a, "2": b}, "rating", "--test", "fixed")
    assert out["test"] == "welch_t"
    welch = sp.ttest_ind(b, a, equal_var=False)
    assert out["p_value"] == pytest.approx(welch.pvalue)
    arm1 = out["arms"][0]
    low, high = sp.t.interval(0.95, len(a) - 1, loc=np.mean(a), scale=sp.sem(a))
    assert (arm1["ci_low"], arm1["ci_high"]) == pytest.approx((low, high))
    ci = welch.confidence_interval(0.95)
    arm2 = out["arms"][1]
    assert (arm2["diff_ci_low"], arm2["diff_ci_high"]) == pytest.approx((ci.low, ci.high))


def test_category_numbers_equal_chi_square(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    a = list(rng.choice(["formal", "friendly", "rude"], 200, p=[0.5, 0.4, 0.1]))
    b = list(rng.choice(["formal", "friendly", "rude"], 200, p=[0.3, 0.65, 0.05]))
    out = report(tmp_path, {"1": a, "2": b}, "tone")
    table = [[b.count(c) for c in ("formal", "friendly", "rude")],
             [a.count(c) for c in ("formal", "friendly", "rude")]]  # fmt: skip
    assert out["test"] == "chi_square"
    assert out["p_value"] == pytest.approx(sp.chi2_contingency(table, correction=False).pvalue)
    assert out["arms"][1]["distribution"]["friendly"] == pytest.approx(b.count("friendly") / 200)
    assert any("no sequential test" in w for w in out["warnings"])


def test_not_enough_data_below_min_samples(tmp_path: Path) -> None:
    out = report(tmp_path, {"1": booleans(0.2, 40, 1), "2": booleans(0.9, 30, 2)}, "resolved",
                 min_samples=200)  # fmt: skip
    assert out["verdict"].startswith("not enough data: arm 2 has 30 of 200")
    assert "mSPRT" in out["verdict"] and out["test"] == "msprt"


def test_direction_min_prefers_the_lower_mean(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    out = report(tmp_path, {"1": list(rng.normal(5, 1, 400)), "2": list(rng.normal(4, 1, 400))},
                 "latency_feel")  # fmt: skip
    assert out["significant"] and out["verdict"].startswith("arm 2 beats 1")
    assert out["lift"] < 0


def test_the_sequential_default_holds_its_error_rate_under_repeated_looks() -> None:
    """A/A tests looked at after every value: mSPRT stays under alpha; the fixed z test,
    looked at every 100 values and stopped at the first p < 0.05, does not."""
    sequential = peeking = 0
    runs = 200
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        a, b = (rng.random(1000) < 0.4).astype(float), (rng.random(1000) < 0.4).astype(float)
        order = rng.permutation(np.r_[np.ones(1000, bool), np.zeros(1000, bool)])
        sequential += stats.msprt(a, b, order, 200, 0.05).p_value < 0.05
        peeking += any(stats.fixed_test(a[:k], b[:k], "boolean").p_value < 0.05
                       for k in range(100, 1001, 100))  # fmt: skip
    assert sequential / runs <= 0.05
    assert peeking / runs > 0.10


def test_the_sequential_test_finds_a_known_effect() -> None:
    rng = np.random.default_rng(11)
    a, b = (rng.random(1500) < 0.40).astype(float), (rng.random(1500) < 0.48).astype(float)
    order = rng.permutation(np.r_[np.ones(1500, bool), np.zeros(1500, bool)])
    result = stats.msprt(a, b, order, 200, 0.05)
    assert result.p_value < 0.05 and result.diff_low < 0.08 < result.diff_high


def test_table_markdown_and_plot(tmp_path: Path) -> None:
    report(tmp_path, {"1": booleans(0.4, 120, 1), "2": booleans(0.5, 120, 2)}, "resolved")
    base = [sys.executable, "-m", "gateway", "experiments", "report", "exp", "--policy",
            str(tmp_path / "policy.yaml")]  # fmt: skip
    table = subprocess.run([*base, "--plot", str(tmp_path / "out.png")], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "verdict:" in table.stdout and "95% low" in table.stdout
    png = (tmp_path / "out.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    md = subprocess.run([*base, "--format", "markdown"], capture_output=True, text=True, timeout=60)
    assert "| arm |" in md.stdout and "**Verdict:**" in md.stdout
    missing = subprocess.run([*base[:5], "nope", *base[6:]], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert missing.returncode == 1 and "no experiment 'nope'" in missing.stderr
