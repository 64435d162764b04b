"""Our responses, for every provider, validate against OpenAI's official OpenAPI schemas
(tests/fixtures/openai_schemas.json, copied from openai/openai-openapi, MIT)."""

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator

from benchmarks.mock_upstream import Behavior, MockUpstream


def nullable_to_json_schema(node: Any) -> Any:
    """The spec marks optional nulls OpenAPI-3.0 style (`nullable: true`); say it in JSON Schema."""
    if isinstance(node, list):
        return [nullable_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: nullable_to_json_schema(v) for k, v in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


DOC = nullable_to_json_schema(
    json.loads((Path(__file__).parent / "fixtures" / "openai_schemas.json").read_text())
)


def validate(name: str, instance: Any) -> None:
    schema = {**DOC, "$ref": f"#/components/schemas/{name}"}
    errors = list(Draft202012Validator(schema).iter_errors(instance))
    assert not errors, f"{name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_the_validator_rejects_a_wrong_document() -> None:
    with pytest.raises(AssertionError):
        validate("CreateChatCompletionResponse", {"id": "x", "object": "chat.completion"})


@pytest.mark.parametrize("model", ["gpt", "azure-gpt", "claude"])
def test_chat_completion_responses(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    request = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
    validate("CreateChatCompletionRequest", request)
    validate(
        "CreateChatCompletionResponse", client.post("/v1/chat/completions", json=request).json()
    )
    mock.behave(
        {"gpt": "up-gpt", "azure-gpt": "my-deployment", "claude": "claude-up"}[model],
        Behavior(tool_call={"name": "f", "arguments": {"a": 1}}),
    )
    validate(
        "CreateChatCompletionResponse", client.post("/v1/chat/completions", json=request).json()
    )


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_stream_chunks(client: httpx.Client, mock: MockUpstream, model: str) -> None:
    request = {
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text = client.post("/v1/chat/completions", json=request).text
    chunks = [orjson.loads(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]
    assert len(chunks) > 3
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)


def test_completions_embeddings_models_and_errors(client: httpx.Client, mock: MockUpstream) -> None:
    validate(
        "CreateCompletionResponse",
        client.post("/v1/completions", json={"model": "gpt", "prompt": "Hi"}).json(),
    )
    validate(
        "CreateEmbeddingResponse",
        client.post("/v1/embeddings", json={"model": "gpt", "input": ["a", "b"]}).json(),
    )
    validate("ListModelsResponse", client.get("/v1/models").json())
    validate("Model", client.get("/v1/models/gpt").json())
    for response in (
        client.get("/v1/models/nope"),
        client.post(
            "/v1/chat/completions", content=b"{bad", headers={"content-type": "application/json"}
        ),
        client.get("/v1/unknown"),
        client.post(
            "/v1/chat/completions",
            json={"model": "dead", "messages": [{"role": "user", "content": "x"}]},
        ),
    ):
        validate("ErrorResponse", response.json())
