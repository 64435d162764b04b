"""What an experiment report reads from the request log: each arm's feedback values in
the order they arrived, and each arm's requests (cost, latency, tokens, errors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

FEEDBACK_SQL = """
SELECT r.arm, f.value, f.category, f.created_at
FROM feedback f JOIN requests r USING (request_id)
WHERE r.experiment = ? AND f.metric = ? AND r.arm IS NOT NULL
ORDER BY f.created_at, f.feedback_id
"""
REQUESTS_SQL = """
SELECT arm, count(*), avg(CASE WHEN status >= 400 OR status = 0 THEN 1.0 ELSE 0.0 END),
       sum(cost_usd)::DOUBLE, quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.95),
       avg(input_tokens), avg(output_tokens), min(started_at), max(started_at)
FROM requests WHERE experiment = ? AND arm IS NOT NULL GROUP BY arm
"""


@dataclass
class ArmData:
    values: list[float] = field(default_factory=list)  # numeric feedback, in arrival order
    categories: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)  # when each feedback value came
    requests: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExperimentData:
    arms: dict[str, ArmData]
    order: list[str]  # the arm of each feedback value, in arrival order


def read(db: Path, experiment: str, metric: str, arms: list[str]) -> ExperimentData:
    """Everything the report needs, from one read-only connection."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        feedback = con.execute(FEEDBACK_SQL, [experiment, metric]).fetchall()
        requests = con.execute(REQUESTS_SQL, [experiment]).fetchall()
    finally:
        con.close()
    data = ExperimentData({arm: ArmData() for arm in arms}, [])
    for arm, value, category, created in feedback:
        found = data.arms.setdefault(arm, ArmData())
        if category is not None:
            found.categories.append(category)
        elif value is not None:
            found.values.append(float(value))
        found.times.append(created)
        data.order.append(arm)
    keys = ("requests", "error_rate", "cost_usd", "latency_p50_ms", "latency_p95_ms",
            "input_tokens_mean", "output_tokens_mean", "first_request", "last_request")  # fmt: skip
    for arm, *row in requests:
        data.arms.setdefault(arm, ArmData()).requests = dict(zip(keys, row, strict=True))
    return data
