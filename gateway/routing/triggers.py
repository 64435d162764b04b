"""What kind of failure an error is, in the words of `fallbacks[].on`: the upstream's
(`rate_limit`, `server_error`, `timeout`, `unreachable`), the prompt's (`context_window`)
or the content's (`content_policy`). None: the client's own error (never retried)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from gateway.policy.routing import Trigger

CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
CONTEXT_WORDS = ("maximum context length", "prompt is too long", "context window",
                 "too many tokens", "input is too long")  # fmt: skip
POLICY_CODES = {"content_filter", "content_policy_violation", "ResponsibleAIPolicyViolation"}


class ContextWindowExceeded(GatewayError):
    """Every target's `context_length` is under the prompt (the gateway's estimate)."""

    status = 400
    type = "invalid_request_error"
    code = "context_length_exceeded"


class ContentPolicyRefusal(GatewayError):
    """The upstream answered with a content-filter (or refusal) finish and nothing else."""

    status = 400
    type = "invalid_request_error"
    code = "content_filter"


def trigger(exc: GatewayError) -> Trigger | None:
    if isinstance(exc, ContextWindowExceeded):
        return "context_window"
    if isinstance(exc, ContentPolicyRefusal):
        return "content_policy"
    if isinstance(exc, UpstreamTimeout) or exc.status == 504:
        return "timeout"
    if isinstance(exc, UpstreamUnreachable):
        return "unreachable"
    if exc.status == 429:
        return "rate_limit"
    if exc.status >= 500:
        return "server_error"
    if isinstance(exc, UpstreamError) and exc.status in (400, 403, 413, 422):
        return client_error_kind(exc.body)
    return None


def client_error_kind(body: bytes) -> Trigger | None:
    """OpenAI's and Azure's `context_length_exceeded` / `content_filter` (with Azure's
    `innererror.code: ResponsibleAIPolicyViolation`), Anthropic's "prompt is too long"."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return None
    inner = error.get("innererror")
    codes = {error.get("code"), error.get("type"),
             inner.get("code") if isinstance(inner, dict) else None}  # fmt: skip
    message = str(error.get("message", "")).lower()
    if codes & CONTEXT_CODES or any(w in message for w in CONTEXT_WORDS):
        return "context_window"
    if codes & POLICY_CODES:
        return "content_policy"
    return None
