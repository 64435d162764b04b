"""What an entry is keyed by: equal meaning, equal key; anything that shapes the answer
(or the tenant, or the model's configuration) changes it."""

from __future__ import annotations

from typing import Any

from gateway.cache.key import (
    deterministic,
    exact_key,
    last_user_text,
    partition_key,
)

BODY: dict[str, Any] = {"model": "gpt", "messages": [{"role": "user", "content": "Hi"}],
                        "temperature": 0}  # fmt: skip


def key(body: dict[str, Any], namespace: str = "ns", alias: str = "gpt", config: str = "c",
        operation: str = "chat") -> str:  # fmt: skip
    return exact_key(namespace, operation, alias, config, body)  # type: ignore[arg-type]


def test_same_meaning_same_key() -> None:
    base = key(BODY)
    assert key({**BODY, "temperature": 0.0}) == base  # numbers normalised
    assert key({"temperature": 0, "messages": BODY["messages"], "model": "gpt"}) == base
    assert key({**BODY, "stream": True, "stream_options": {"include_usage": True}}) == base
    assert key({**BODY, "user": "u1", "metadata": {"a": "b"}, "store": True}) == base
    assert key({**BODY, "top_p": 1, "n": 1, "presence_penalty": 0}) == base  # defaults
    assert key({**BODY, "top_p": None}) == base  # null is omitted
    assert key({**BODY, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Hi"}]}]}) == base  # fmt: skip
    assert key({**BODY, "max_tokens": 5}) == key({**BODY, "max_completion_tokens": 5})
    assert key({**BODY, "stop": "x"}) == key({**BODY, "stop": ["x"]})


def test_what_shapes_the_answer_changes_the_key() -> None:
    base = key(BODY)
    different = [
        key(BODY, namespace="other"), key(BODY, alias="gpt-2"), key(BODY, config="c2"),
        key({**BODY, "temperature": 0.2}), key({**BODY, "seed": 1}),
        key({**BODY, "messages": [{"role": "user", "content": "Hi!"}]}),
        key({**BODY, "tools": [{"type": "function", "function": {"name": "f"}}]}),
        key({**BODY, "response_format": {"type": "json_object"}}),
        key({**BODY, "max_tokens": 5}), key(BODY, operation="completions"),
    ]  # fmt: skip
    assert base not in different and len(set(different)) == len(different)


def test_omitted_temperature_is_one_not_zero() -> None:
    omitted = {k: v for k, v in BODY.items() if k != "temperature"}
    assert key(omitted) == key({**BODY, "temperature": 1}) != key(BODY)
    assert not deterministic("chat", omitted)
    assert deterministic("chat", BODY) and deterministic("chat", {**omitted, "seed": 3})
    assert not deterministic("chat", {**BODY, "temperature": 0.7})
    assert deterministic("embeddings", {"input": "x"})


def test_the_semantic_partition_is_everything_but_the_last_user_text() -> None:
    def part(body: dict[str, Any]) -> str:
        return partition_key("ns", "chat", "gpt", "c", body)

    system = {"role": "system", "content": "Be brief."}
    a = {**BODY, "messages": [system, {"role": "user", "content": "Capital of France?"}]}
    b = {**BODY, "messages": [system, {"role": "user", "content": "France's capital?"}]}
    assert part(a) == part(b)
    assert part(a) != part({**a, "messages": [{"role": "system", "content": "Be long."},
                                              a["messages"][1]]})  # fmt: skip
    assert part(a) != part({**a, "temperature": 0.5})
    assert part(a) != partition_key("other", "chat", "gpt", "c", a)
    assert last_user_text("chat", a) == "Capital of France?"
    assert last_user_text("chat", {"messages": [{"role": "assistant", "content": "x"}]}) is None
    assert last_user_text("completions", {"prompt": "Say hi"}) == "Say hi"
    assert last_user_text("embeddings", {"input": "x"}) is None
