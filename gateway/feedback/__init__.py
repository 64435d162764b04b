"""Feedback on a request (`POST /v1/feedback`): a value for a metric the policy declares,
validated against its type and bounds, stored in the request log's `feedback` table (the
latest per request and metric) and `feedback_history` (every value)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest
from gateway.policy.experiments import FeedbackConfig, FeedbackMetric
from gateway.telemetry.rows import Row


@dataclass(frozen=True, slots=True)
class Feedback:
    request_id: str  # as the client gave it: the x-request-id, or the response's id
    metric: str
    value: float | None  # boolean 1/0, or the number
    category: str | None
    comment: str | None

    @property
    def answer(self) -> Any:
        return self.category if self.category is not None else self.value

    def row(self, request_id: str, key_id: str | None) -> tuple[str, Row]:
        """The feedback id and the row for the log (in FEEDBACK_COLUMNS' order)."""
        feedback_id = "fb_" + uuid.uuid4().hex
        row = (request_id, self.metric, self.value, self.category, self.comment, key_id,
               int(time.time() * 1_000_000), feedback_id)  # fmt: skip
        return feedback_id, row


def parse_feedback(doc: Any, config: FeedbackConfig) -> Feedback:
    """The body `{"request_id", "metric", "value", "comment"?}`; a 400 naming the field
    when something is missing, unknown or of the wrong type."""
    if not isinstance(doc, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = sorted(set(doc) - {"request_id", "metric", "value", "comment"})
    if unknown:
        raise InvalidRequest(f"Unrecognized request argument supplied: {unknown[0]}",
                             param=unknown[0], code="unknown_parameter")  # fmt: skip
    request_id = text_field(doc, "request_id", 200)
    name = text_field(doc, "metric", 200)
    metric = config.metrics.get(name)
    if metric is None:
        known = ", ".join(sorted(config.metrics)) or "none are declared"
        raise InvalidRequest(f"Unknown feedback metric {name!r} (metrics: {known}).",
                             param="metric", code="unknown_metric")  # fmt: skip
    if "value" not in doc:
        raise InvalidRequest("Missing required parameter: 'value'.", param="value",
                             code="missing_required_parameter")  # fmt: skip
    value, category = check_value(name, metric, doc["value"])
    comment = doc.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise InvalidRequest("'comment' must be a string.", param="comment",
                             code="invalid_type")  # fmt: skip
    if comment is not None and len(comment) > config.max_comment_chars:
        raise InvalidRequest(f"'comment' is longer than {config.max_comment_chars} characters.",
                             param="comment", code="string_above_max_length")  # fmt: skip
    return Feedback(request_id, name, value, category, comment)


def text_field(doc: dict[str, Any], name: str, limit: int) -> str:
    value = doc.get(name)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name,
                             code="missing_required_parameter")  # fmt: skip
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidRequest(f"'{name}' must be a non-empty string of at most {limit} "
                             "characters.", param=name, code="invalid_type")  # fmt: skip
    return value


def check_value(name: str, metric: FeedbackMetric, value: Any) -> tuple[float | None, str | None]:
    """(number, category) for the metric's type, or a 400."""
    if metric.type == "boolean":
        if not isinstance(value, bool):
            raise wrong_value(name, "true or false", value)
        return float(value), None
    if metric.type == "category":
        if not isinstance(value, str) or value not in metric.categories:
            raise wrong_value(name, "one of " + ", ".join(metric.categories), value)
        return None, value
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise wrong_value(name, "a number", value)
    low, high = metric.min, metric.max
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if low is not None and high is not None else (
            f"at least {low:g}" if low is not None else f"at most {high:g}")  # fmt: skip
        raise wrong_value(name, f"a number {bounds}", value)
    return float(value), None


def wrong_value(name: str, expected: str, value: Any) -> InvalidRequest:
    shown = repr(value) if isinstance(value, bool | int | float) else type(value).__name__
    return InvalidRequest(f"Metric {name!r} takes {expected} (got {shown}).", param="value",
                          code="invalid_value")  # fmt: skip
