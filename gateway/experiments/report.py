"""`gateway experiments report`: per arm n, the metric's mean with its 95% interval,
lift and p-value against the control, cost, latency and tokens; a verdict that waits
for `min_samples` and says which test it used."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from gateway.experiments import stats
from gateway.experiments.data import ArmData, ExperimentData
from gateway.policy.experiments import ExperimentConfig, FeedbackMetric

Test = Literal["sequential", "fixed"]
TEST_NAMES = {
    "msprt": "mSPRT, always valid at every look",
    "two_proportion_z": "two-proportion z test, fixed horizon",
    "fisher_exact": "Fisher's exact test, fixed horizon",
    "welch_t": "Welch's t test, fixed horizon",
    "chi_square": "chi-square test, fixed horizon",
}
PEEKING = ("fixed-horizon test: valid for one look at the planned sample size; stopping at "
           "the first look with p < alpha inflates false positives (the default, --test "
           "sequential, is valid at every look)")  # fmt: skip


def build(name: str, config: ExperimentConfig, metric_name: str, metric: FeedbackMetric,
          data: ExperimentData, test: Test = "sequential",
          versions: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    control = config.control_arm
    arms = list(config.arms) + [a for a in data.arms if a not in config.arms]
    rows = [arm_row(arm, data.arms.get(arm, ArmData()), metric, (versions or {}).get(arm))
            for arm in arms]  # fmt: skip
    base = data.arms.get(control, ArmData())
    warnings: list[str] = []
    others = [r for r in rows if r["arm"] != control]
    for row in others:
        compare(row, base, data.arms.get(row["arm"], ArmData()), data, control, config,
                metric, test, warnings)  # fmt: skip
    tested = [r for r in others if r.get("p_value") is not None]
    if len(tested) > 1:
        for row in tested:  # Bonferroni: each arm against the control is one comparison
            row["p_value_adjusted"] = min(1.0, row["p_value"] * len(tested))
    best = pick_best(tested, metric)
    p_value = best.get("p_value_adjusted", best.get("p_value")) if best else None
    report: dict[str, Any] = {
        "experiment": name, "prompt": config.prompt, "metric": metric_name,
        "metric_type": metric.type, "direction": metric.direction,
        "test": best["test"] if best else test_name(test, metric),
        "control": control, "alpha": config.alpha, "min_samples": config.min_samples,
        "arms": rows, "best_arm": best["arm"] if best else None,
        "lift": best.get("lift") if best else None, "p_value": p_value,
        "significant": p_value is not None and p_value < config.alpha,
        "multiple_comparisons": "bonferroni" if len(tested) > 1 else None,
    }  # fmt: skip
    if test == "fixed":
        warnings.append(PEEKING)
    report["verdict"] = verdict(report, rows, config, metric_name)
    report["warnings"] = list(dict.fromkeys(warnings))
    return report


def test_name(test: Test, metric: FeedbackMetric) -> str:
    if metric.type == "category":
        return "chi_square"
    if test == "sequential":
        return "msprt"
    return "two_proportion_z" if metric.type == "boolean" else "welch_t"


def arm_row(arm: str, data: ArmData, metric: FeedbackMetric, version: int | None) -> dict[str, Any]:
    requests = data.requests
    n = len(data.categories) if metric.type == "category" else len(data.values)
    row: dict[str, Any] = {"arm": arm, "version": version, "n": n,
                           "requests": int(requests.get("requests") or 0)}  # fmt: skip
    interval = (
        stats.mean_interval(np.array(data.values), metric.type)
        if metric.type != "category"
        else None
    )
    row["mean"] = interval.mean if interval else None
    row["ci_low"] = clean(interval.low) if interval else None
    row["ci_high"] = clean(interval.high) if interval else None
    if metric.type == "category":
        row["distribution"] = {c: data.categories.count(c) / n if n else None
                               for c in metric.categories}  # fmt: skip
    cost = requests.get("cost_usd")
    count = row["requests"]
    row.update({
        "cost_usd": cost,
        "cost_per_request_usd": cost / count if cost is not None and count else None,
        "latency_p50_ms": requests.get("latency_p50_ms"),
        "latency_p95_ms": requests.get("latency_p95_ms"),
        "input_tokens_mean": requests.get("input_tokens_mean"),
        "output_tokens_mean": requests.get("output_tokens_mean"),
        "error_rate": requests.get("error_rate"),
    })  # fmt: skip
    return row


def compare(row: dict[str, Any], control: ArmData, arm: ArmData, data: ExperimentData,
            control_name: str, config: ExperimentConfig, metric: FeedbackMetric, test: Test,
            warnings: list[str]) -> None:  # fmt: skip
    """The arm against the control: lift, difference (with its interval), p-value, test."""
    if metric.type == "category":
        if min(len(arm.categories), len(control.categories)) == 0:
            return
        if test == "sequential":
            warnings.append("category metrics have no sequential test here: chi-square at a "
                            "fixed horizon (look once, at min_samples)")  # fmt: skip
        row["test"] = "chi_square"
        row["p_value"] = stats.chi_square(control.categories, arm.categories, metric.categories)
        return
    a, c = np.array(arm.values), np.array(control.values)
    if len(a) < 2 or len(c) < 2:
        return
    if test == "sequential":
        order = np.array([o == row["arm"] for o in data.order if o in (row["arm"], control_name)])
        result = stats.msprt(c, a, order, config.min_samples, config.alpha)
    else:
        result = stats.fixed_test(c, a, metric.type, 1 - config.alpha)
    base = float(c.mean())
    row.update({
        "test": result.test, "p_value": result.p_value, "diff": result.diff,
        "diff_ci_low": clean(result.diff_low), "diff_ci_high": clean(result.diff_high),
        "lift": result.diff / abs(base) if base else None,
    })  # fmt: skip


def clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def pick_best(rows: list[dict[str, Any]], metric: FeedbackMetric) -> dict[str, Any] | None:
    """The arm the report leads with: the best mean (by direction), or for categories
    the smallest p-value."""
    if not rows:
        return None
    if metric.type == "category":
        return min(rows, key=lambda r: r["p_value"])
    sign = 1 if metric.direction == "max" else -1
    return max(rows, key=lambda r: sign * r["diff"])


def verdict(report: dict[str, Any], rows: list[dict[str, Any]], config: ExperimentConfig,
            metric: str) -> str:  # fmt: skip
    short = [r for r in rows if r["n"] < config.min_samples]
    test = TEST_NAMES.get(report["test"], report["test"])
    if short:
        worst = min(short, key=lambda r: r["n"])
        return (f"not enough data: arm {worst['arm']} has {worst['n']} of {config.min_samples} "
                f"feedback values on {metric} ({test})")  # fmt: skip
    best, p = report["best_arm"], report["p_value"]
    if best is None:
        return f"no comparison yet: arms need feedback on {metric} ({test})"
    if not report["significant"]:
        return f"no significant difference on {metric} yet (p = {p:.3g}, {test})"
    if report["metric_type"] == "category":
        return f"arm {best} differs from {report['control']} on {metric} (p = {p:.3g}, {test})"
    lift = report["lift"]
    better = (report["direction"] == "max") == (
        next(r for r in rows if r["arm"] == best)["diff"] > 0
    )
    shown = f"{lift:+.1%}" if lift is not None else "n/a"
    if better:
        return f"arm {best} beats {report['control']} on {metric}: {shown} (p = {p:.3g}, {test})"
    return (f"control {report['control']} is best on {metric}: arm {best} is {shown} "
            f"(p = {p:.3g}, {test})")  # fmt: skip
