"""The statistics of an experiment report, on scipy: an arm's mean with its 95%
interval, and an arm against the control, by a fixed-horizon test (two-proportion z or
Fisher's exact for booleans, Welch's t for floats, chi-square for categories) or by an
always-valid sequential test (mSPRT) that may be looked at as often as one likes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

SMALL_COUNT = 5  # an expected cell below this: Fisher's exact instead of the z test
POWER_SE = 2.8  # the mSPRT mixture: effects a fixed test at min_samples finds 80% of the time


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def mean_interval(values: np.ndarray, kind: str, level: float = 0.95) -> Interval | None:
    """Boolean: Wilson's interval; float: Student's t. None without data."""
    n = len(values)
    if n == 0:
        return None
    mean = float(values.mean())
    if kind == "boolean":
        ci = stats.binomtest(int(values.sum()), n).proportion_ci(level, method="wilson")
        return Interval(mean, float(ci.low), float(ci.high))
    if n < 2 or float(values.std()) == 0.0:
        return Interval(mean, mean, mean) if n >= 2 else Interval(mean, math.nan, math.nan)
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=stats.sem(values))
    return Interval(mean, float(low), float(high))


@dataclass(frozen=True)
class Comparison:
    test: str  # which test produced p_value
    p_value: float
    diff: float  # arm mean - control mean
    diff_low: float  # the difference's interval (the sequential test's: always valid)
    diff_high: float


def fixed_test(control: np.ndarray, arm: np.ndarray, kind: str, level: float = 0.95) -> Comparison:
    """One look at a fixed sample size."""
    diff = float(arm.mean() - control.mean())
    z = stats.norm.ppf(0.5 + level / 2)
    if kind == "boolean":
        k0, n0, k1, n1 = int(control.sum()), len(control), int(arm.sum()), len(arm)
        table = np.array([[k1, n1 - k1], [k0, n0 - k0]])
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        se = math.sqrt(
            arm.mean() * (1 - arm.mean()) / n1 + control.mean() * (1 - control.mean()) / n0
        )
        if expected.min() < SMALL_COUNT:
            return Comparison("fisher_exact", float(stats.fisher_exact(table).pvalue), diff,
                              diff - z * se, diff + z * se)  # fmt: skip
        pooled = (k0 + k1) / (n0 + n1)
        pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
        p = 2 * stats.norm.sf(abs(diff) / pooled_se) if pooled_se > 0 else 1.0
        return Comparison("two_proportion_z", float(p), diff, diff - z * se, diff + z * se)
    result = stats.ttest_ind(arm, control, equal_var=False)
    ci = result.confidence_interval(level)
    p = float(result.pvalue) if not math.isnan(result.pvalue) else 1.0
    return Comparison("welch_t", p, diff, float(ci.low), float(ci.high))


def chi_square(control: list[str], arm: list[str], categories: tuple[str, ...]) -> float:
    """The p-value of chi-square on the arms x categories table (categories neither arm
    used are left out)."""
    table = np.array([[arm.count(c) for c in categories], [control.count(c) for c in categories]])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def msprt(control: np.ndarray, arm: np.ndarray, order: np.ndarray, min_samples: int,
          alpha: float) -> Comparison:  # fmt: skip
    """The mixture sequential probability ratio test (Johari et al., "Always valid
    inference", 2017) for a difference in means, looked at after every feedback value in
    the order they arrived (`order`: True where the value is the arm's, False the
    control's, in time order). p = min over looks of 1/Lambda: valid however often the
    report is read. The variance is the arms' pooled within-arm variance (plugged in, as
    the paper's known variance); the normal mixture's tau^2 is the squared effect a fixed
    test at `min_samples` per arm would detect with 80% power."""
    diff = float(arm.mean() - control.mean())
    dof = len(arm) + len(control) - 2
    if dof <= 0:
        return Comparison("msprt", 1.0, diff, -math.inf, math.inf)
    sigma2 = (float(((arm - arm.mean()) ** 2).sum()) +
              float(((control - control.mean()) ** 2).sum())) / dof  # fmt: skip
    tau2 = POWER_SE**2 * 2 * sigma2 / min_samples
    values = np.empty(len(order))
    values[order], values[~order] = arm, control
    is_arm = order.astype(float)
    n1, n0 = np.cumsum(is_arm), np.cumsum(1 - is_arm)
    seen = (n1 > 0) & (n0 > 0)
    if sigma2 <= 0 or not seen.any():
        return Comparison("msprt", 1.0 if sigma2 > 0 or diff == 0 else 0.0, diff, diff, diff)
    n1, n0 = n1[seen], n0[seen]
    d = (np.cumsum(values * is_arm)[seen] / n1) - (np.cumsum(values * (1 - is_arm))[seen] / n0)
    v = sigma2 * (1 / n1 + 1 / n0)
    log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * d**2 / (2 * v * (v + tau2))
    p = float(min(1.0, math.exp(-float(log_lambda.max()))))
    last = float(v[-1])
    half = math.sqrt(2 * last * (last + tau2) / tau2 *
                     (math.log(1 / alpha) + 0.5 * math.log((last + tau2) / last)))  # fmt: skip
    return Comparison("msprt", p, diff, diff - half, diff + half)
