from typing import Any

import orjson
import pytest

from gateway.errors import InvalidRequest
from gateway.providers.openai_to_anthropic import (
    StreamTranslator,
    error_from_upstream,
    from_upstream,
    to_upstream,
)

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Get weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_request_system_roles_content_and_parameters() -> None:
    body = {
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                ],
            },
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "Thanks"},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "u-1",
        "stream": True,
    }
    out = to_upstream(body)
    assert out["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "No emojis."},
    ]
    assert out["messages"][0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
            },
            {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
        ],
    }
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "A cat."}],
    }
    assert out["max_tokens"] == 50
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-1"}
    assert (out["temperature"], out["top_p"], out["stream"]) == (0.2, 0.9, True)


def test_request_tools_tool_calls_and_results() -> None:
    body = {
        "model": "m",
        "tools": TOOLS,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "t2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "t2", "content": "rain"},
        ],
    }
    out = to_upstream(body)
    assert out["max_tokens"] == 4096
    assert out["tools"] == [
        {
            "name": "weather",
            "description": "Get weather",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "t2", "name": "weather", "input": {"city": "Rome"}},
    ]
    # consecutive tool results become one user turn, so roles alternate
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "t2", "content": "rain"},
        ],
    }
    named = to_upstream(
        {
            **body,
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "parallel_tool_calls": None,
        }
    )
    assert named["tool_choice"] == {"type": "tool", "name": "weather"}


def test_n_above_one_is_rejected() -> None:
    with pytest.raises(InvalidRequest):
        to_upstream({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]})


def test_response_text_tools_finish_reason_and_cache_usage() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        },
    }
    out = from_upstream(message, created=123)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert out["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert (out["id"], out["model"], out["created"], out["object"]) == (
        "msg_1",
        "claude-x",
        123,
        "chat.completion",
    )


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    out = from_upstream({"content": [], "stop_reason": reason, "usage": {}}, created=1)
    assert out["choices"][0]["finish_reason"] == finish


def _events() -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "message_start",
            {
                "message": {
                    "id": "msg_1",
                    "model": "claude-x",
                    "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 4},
                }
            },
        ),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_stop", {"index": 0}),
        (
            "content_block_start",
            {
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"ci'}},
        ),
        (
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": 'ty":"Paris"}'}},
        ),
        ("content_block_stop", {"index": 1}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}),
        ("message_stop", {}),
    ]


def test_stream_events_become_chunks() -> None:
    translator = StreamTranslator(include_usage=True, created=5)
    chunks = [c for name, data in _events() for c in translator.feed(name, data)]
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "weather", "arguments": ""},
            }
        ]
    }
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5] if d)
    assert orjson.loads(args) == {"city": "Paris"}
    assert chunks[5]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[6]["choices"] == []
    assert chunks[6]["usage"] == {
        "prompt_tokens": 14,
        "completion_tokens": 7,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    assert len(chunks) == 7
    assert all(
        c["id"] == "msg_1" and c["model"] == "claude-x" and c["object"] == "chat.completion.chunk"
        for c in chunks
    )


def test_stream_usage_chunk_only_when_asked() -> None:
    translator = StreamTranslator(include_usage=False, created=5)
    chunks = [c for name, data in _events() for c in translator.feed(name, data)]
    assert all("usage" not in c for c in chunks)


def test_stream_and_non_stream_agree_on_usage() -> None:
    message = {
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 4},
    }
    translator = StreamTranslator(include_usage=True, created=5)
    chunks = [c for name, data in _events() for c in translator.feed(name, data)]
    assert chunks[-1]["usage"] == from_upstream(message, created=5)["usage"]


def test_error_translation() -> None:
    body, message = error_from_upstream(
        429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    )
    assert message == "slow down"
    assert orjson.loads(body) == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_exceeded",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    body, _ = error_from_upstream(500, b"oops")
    assert orjson.loads(body)["error"]["message"] == "oops"
