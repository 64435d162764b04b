"""One exception hierarchy for the whole gateway, mapped to OpenAI's error JSON in one place.

Every failure a client can see is a `GatewayError`. `to_body` renders the
`{"error": {"message", "type", "param", "code"}}` document that OpenAI's SDKs parse;
`middleware.py` is the single place that turns these exceptions into responses.
"""

from __future__ import annotations

from typing import Any

import orjson


class GatewayError(Exception):
    """Base class: an error with an HTTP status and an OpenAI error body."""

    status = 500
    type = "api_error"
    code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def to_body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)

    @property
    def error_type(self) -> str:
        """What telemetry records as `error.type`."""
        return self.code or self.type


def error_body(message: str, type_: str, param: str | None, code: str | None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"

    def __init__(self, param: str, detail: str | None = None) -> None:
        super().__init__(
            f"Unsupported parameter: '{param}' is not supported with this model."
            + (f" ({detail})" if detail else ""),
            param=param,
        )


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class ClientClosedRequest(GatewayError):
    """The client went away before its request was read (nginx's 499). Nobody reads
    the answer; the status is for the log and the request row."""

    status = 499
    type = "invalid_request_error"
    code = "client_disconnected"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class UpstreamUnreachable(GatewayError):
    status = 502
    type = "api_error"
    code = "upstream_unreachable"


class UpstreamInvalidResponse(GatewayError):
    """The upstream answered 2xx with something that is not an OpenAI response."""

    status = 502
    type = "api_error"
    code = "upstream_invalid_response"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "api_error"
    code = "service_unavailable"


class ServerShuttingDown(ServiceUnavailable):
    """The drain deadline passed while the request was still running."""

    code = "server_shutting_down"


class LocalModelFailed(GatewayError):
    """An in-process model's run failed (the request fails; the model keeps serving)."""

    code = "local_model_error"


class UpstreamError(GatewayError):
    """The upstream answered 4xx/5xx: its status and (OpenAI-shaped) body go to the client."""

    type = "upstream_error"

    def __init__(self, status: int, body: bytes, message: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.status = status
        self.body = body

    def to_body(self) -> bytes:
        return self.body

    @property
    def error_type(self) -> str:
        return str(self.status)  # the upstream's HTTP status, as the conventions say

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


def openai_error_from_upstream(status: int, raw: bytes) -> tuple[bytes, str]:
    """Normalise an upstream error body into OpenAI's shape, returning (body, message).

    An OpenAI-shaped body is passed through byte for byte; anything else (HTML from a
    proxy, Anthropic's `{"type": "error", ...}`, plain text) is wrapped.
    """
    try:
        parsed: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            if "type" in err and parsed.get("type") != "error":
                return raw, err["message"]
            etype = str(err.get("type") or "upstream_error")
            return error_body(err["message"], etype, None, etype), err["message"]
    text = raw.decode("utf-8", "replace").strip()[:500] or f"upstream returned HTTP {status}"
    return error_body(text, "upstream_error", None, f"upstream_{status}"), text


class RateLimitExceeded(GatewayError):
    """A gateway limit (rpm, tpm, concurrent) of a key, team or end user is reached."""

    status = 429
    type = "requests"  # OpenAI's: requests | tokens
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str = "requests",
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message, headers=headers)
        self.type = kind


class QuotaExceeded(GatewayError):
    """A budget (USD a day, week or month) of a key, team or end user is spent."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
