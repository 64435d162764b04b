import orjson

from gateway.errors import ModelNotFound, UpstreamError, openai_error_from_upstream


def test_error_body_has_openai_shape() -> None:
    body = orjson.loads(ModelNotFound("gpt-9").to_body())
    assert body == {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_openai_shaped_upstream_error_passes_byte_for_byte() -> None:
    raw = b'{"error": {"message": "Rate limit", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}'
    body, message = openai_error_from_upstream(429, raw)
    assert body == raw
    assert message == "Rate limit"


def test_non_json_upstream_error_is_wrapped() -> None:
    body, _ = openai_error_from_upstream(502, b"<html>Bad Gateway</html>")
    err = orjson.loads(body)["error"]
    assert err["message"] == "<html>Bad Gateway</html>"
    assert err["code"] == "upstream_502"
    assert set(err) == {"message", "type", "param", "code"}


def test_upstream_error_retryable() -> None:
    assert UpstreamError(429, b"", "x", {}).retryable
    assert UpstreamError(503, b"", "x", {}).retryable
    assert not UpstreamError(400, b"", "x", {}).retryable
