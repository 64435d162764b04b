"""Streams to whole answers and back, without I/O."""

from __future__ import annotations

import orjson

from benchmarks.mock_upstream import Behavior, openai_chunks, openai_completion
from gateway.cache.chunks_to_completion import assemble, split


def payloads(events: list[bytes]) -> list[bytes]:
    return [e[6:].strip() for e in events if e.startswith(b"data: {")]


def test_assembled_stream_equals_the_whole_answer() -> None:
    behavior = Behavior(text="Paris is the capital.")
    whole = openai_completion("m", behavior)
    assembled = orjson.loads(assemble(payloads(openai_chunks("m", behavior, True))))
    assert assembled["choices"] == whole["choices"]
    assert assembled["usage"] == whole["usage"]
    assert assembled["object"] == "chat.completion" and assembled["id"] == whole["id"]


def test_tool_call_fragments_and_reasoning_are_assembled() -> None:
    head = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    deltas = [
        {"role": "assistant", "content": None, "reasoning_content": "Think"},
        {"reasoning_content": "ing."},
        {"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                         "function": {"name": "get", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
    ]  # fmt: skip
    chunks = [orjson.dumps({**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
              for d in deltas]  # fmt: skip
    chunks.append(orjson.dumps({**head, "choices": [
        {"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))  # fmt: skip
    doc = orjson.loads(assemble(chunks))
    message = doc["choices"][0]["message"]
    assert message["reasoning_content"] == "Thinking."
    assert message["tool_calls"] == [{"id": "call_9", "type": "function",
                                      "function": {"name": "get", "arguments": '{"a":1}'}}]  # fmt: skip
    assert doc["choices"][0]["finish_reason"] == "tool_calls"
    again = orjson.loads(assemble(split(assemble(chunks))))
    assert again["choices"] == doc["choices"]


def test_split_then_assemble_round_trips() -> None:
    for behavior in (Behavior(text="a b c"), Behavior(tool_call={"name": "f", "arguments": {}})):
        whole = orjson.dumps(openai_completion("m", behavior))
        chunks = split(whole)
        assert orjson.loads(chunks[-1])["choices"] == []  # usage comes last, on its own
        assert orjson.loads(assemble(chunks)) == orjson.loads(whole)


def test_text_completions() -> None:
    whole = {"id": "x", "object": "text_completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "text": "Hello there", "finish_reason": "stop",
                          "logprobs": None}], "usage": {"prompt_tokens": 1}}  # fmt: skip
    assert orjson.loads(assemble(split(orjson.dumps(whole)))) == whole
