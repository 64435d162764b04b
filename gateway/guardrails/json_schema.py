"""`type: json_schema`: an answer must be JSON valid against the request's
`response_format.json_schema.schema`; requests without one pass untouched."""

from __future__ import annotations

from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.guardrails.scanners import Finding, PolicyGuardrail
from gateway.policy.models import JsonSchemaGuardrail


def requested_schema(request: dict[str, Any] | None) -> dict[str, Any] | None:
    response_format = (request or {}).get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


class JsonSchemaScanner(PolicyGuardrail):
    def __init__(self, name: str, config: JsonSchemaGuardrail) -> None:
        super().__init__(name, config)

    def check_request(self, body: dict[str, Any]) -> str | None:
        return None

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        schema = requested_schema(request)
        if schema is None:
            return []
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [Finding(0, len(text), "INVALID_JSON")]
        try:
            valid = Draft202012Validator(schema).is_valid(document)
        except SchemaError:
            return [Finding(0, len(text), "INVALID_SCHEMA")]
        return [] if valid else [Finding(0, len(text), "SCHEMA_VIOLATION")]

    def holdback(self, text: str) -> int:
        return 0  # a JSON document is judged whole: a stream waits for its end
