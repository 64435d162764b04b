"""The official openai SDK as the client: sync, async, streaming, and errors surfacing
as the SDK's own exception classes."""

from collections.abc import Iterator

import openai
import pytest

from benchmarks.mock_upstream import Behavior, MockUpstream
from tests.conftest import GatewayServer

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Hello"}
]


@pytest.fixture
def sdk(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key="anything", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model", ["gpt", "azure-gpt", "claude"])
def test_sync_chat(sdk: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    completion = sdk.chat.completions.create(model=model, messages=MESSAGES, temperature=0)
    assert completion.choices[0].message.content == "Hello! How can I help you today?"
    assert completion.usage is not None and completion.usage.total_tokens > 0


@pytest.mark.parametrize("model", ["gpt", "claude"])
def test_sync_stream_with_usage(sdk: openai.OpenAI, mock: MockUpstream, model: str) -> None:
    stream = sdk.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help you today?"
    assert [c.usage is not None for c in chunks].count(True) == 1


async def test_async_chat_and_stream(gateway: GatewayServer, mock: MockUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=gateway.v1, api_key="x", max_retries=0) as client:
        completion = await client.chat.completions.create(model="claude", messages=MESSAGES)
        assert completion.choices[0].finish_reason == "stop"
        parts: list[str] = []
        async for chunk in await client.chat.completions.create(
            model="gpt", messages=MESSAGES, stream=True
        ):
            parts.extend(c.delta.content or "" for c in chunk.choices)
        assert "".join(parts) == "Hello! How can I help you today?"
        models = [m.id async for m in client.models.list()]
        assert "claude" in models


def test_embeddings_completions_and_models(sdk: openai.OpenAI, mock: MockUpstream) -> None:
    assert len(sdk.embeddings.create(model="gpt", input=["a", "b"]).data) == 2
    assert sdk.completions.create(model="gpt", prompt="Hi").choices[0].text
    assert sdk.models.retrieve("gpt").id == "gpt"


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_upstream_errors_raise_sdk_exceptions(
    sdk: openai.OpenAI, mock: MockUpstream, status: int, exc: type[Exception]
) -> None:
    mock.behave("up-gpt", Behavior(status=status))
    with pytest.raises(exc) as info:
        sdk.chat.completions.create(model="gpt", messages=MESSAGES)
    assert "mock failure" in str(info.value)


def test_gateway_errors_raise_sdk_exceptions(sdk: openai.OpenAI, mock: MockUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.InternalServerError) as gateway_error:
        sdk.chat.completions.create(model="dead", messages=MESSAGES)
    assert gateway_error.value.status_code == 502
    mock.behave("up-gpt", Behavior(delay_s=1.5))
    with pytest.raises(openai.InternalServerError) as timeout:
        sdk.chat.completions.create(model="gpt", messages=MESSAGES)
    assert timeout.value.status_code == 504


def test_stream_failure_mid_way_raises_in_the_sdk(sdk: openai.OpenAI, mock: MockUpstream) -> None:
    mock.behave("claude-up", Behavior(cut_after=4))
    stream = sdk.chat.completions.create(model="claude", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="unreachable"):
        list(stream)
