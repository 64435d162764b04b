"""What a cache entry is keyed by: pure functions over the request, tested without I/O.

The exact key is the SHA-256 of canonical JSON (sorted keys, no whitespace) of
`[KEY_VERSION, namespace, operation, model alias, model config hash, body]` where the body
is the client's, minus the fields that do not shape the answer (`UNKEYED`), with OpenAI's
defaults written out (an omitted `temperature` is 1), top-level `null` fields dropped
(OpenAI reads them as omitted), top-level integral floats written as integers
(`temperature: 0.0` is `0`), `max_tokens` spelled `max_completion_tokens`, a `stop` string
as a one-item list and a message's content of a single text part as a plain string.
Nested values (messages, tools, schemas) are keyed as sent: walking them would cost every
request time for spellings clients do not vary.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.providers.base import Operation

KEY_VERSION = 1
# request fields that never change what the model answers: delivery, attribution, storage
UNKEYED = frozenset({"stream", "stream_options", "user", "metadata", "store",
                     "safety_identifier", "prompt_cache_key", "request_id"})  # fmt: skip
CHAT_DEFAULTS: dict[str, Any] = {
    "temperature": 1, "top_p": 1, "n": 1, "presence_penalty": 0, "frequency_penalty": 0,
    "logprobs": False, "response_format": {"type": "text"},
}  # fmt: skip
COMPLETION_DEFAULTS: dict[str, Any] = {
    "temperature": 1, "top_p": 1, "n": 1, "presence_penalty": 0, "frequency_penalty": 0,
    "best_of": 1, "echo": False, "suffix": None,
}  # fmt: skip
EMBEDDING_DEFAULTS: dict[str, Any] = {"encoding_format": "float"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "chat": CHAT_DEFAULTS, "completions": COMPLETION_DEFAULTS, "embeddings": EMBEDDING_DEFAULTS,
}  # fmt: skip


def number(value: Any) -> Any:
    """One spelling per number: 2.0 is 2."""
    if type(value) is float and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def canonical_body(operation: Operation, body: dict[str, Any]) -> dict[str, Any]:
    """The request as it shapes the answer: defaults explicit, unkeyed fields gone."""
    out: dict[str, Any] = {k: v for k, v in DEFAULTS[operation].items() if v is not None}
    for k, v in body.items():
        if v is not None and k not in UNKEYED and k != "model":
            out[k] = number(v)
    if operation == "chat":
        if "max_tokens" in out:
            out.setdefault("max_completion_tokens", out.pop("max_tokens"))
        if out.get("tools"):
            out.setdefault("tool_choice", "auto")
            out.setdefault("parallel_tool_calls", True)
        if isinstance(out.get("messages"), list):
            out["messages"] = [plain_message(m) for m in out["messages"]]
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    return out


def plain_message(message: Any) -> Any:
    """A content of exactly one text part means the same as that text."""
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, list) and len(content) == 1 and is_text_part(content[0]):
        return {**message, "content": content[0]["text"]}
    return message


def is_text_part(part: Any) -> bool:
    return isinstance(part, dict) and set(part) == {"type", "text"} and part["type"] == "text"


def digest(parts: list[Any]) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def exact_key(
    namespace: str, operation: Operation, alias: str, config_hash: str, body: dict[str, Any]
) -> str:
    return digest([KEY_VERSION, namespace, operation, alias, config_hash,
                   canonical_body(operation, body)])  # fmt: skip


def deterministic(operation: Operation, body: dict[str, Any]) -> bool:
    """`eligible: deterministic`: embeddings, or sampling at temperature 0, or a seed."""
    if operation == "embeddings":
        return True
    temperature = body.get("temperature")
    return body.get("seed") is not None or (
        isinstance(temperature, int | float) and temperature == 0
    )


# -- the semantic cache: what is embedded, and the hard partition around it ----------


def last_user_text(operation: Operation, body: dict[str, Any]) -> str | None:
    """The text the semantic cache compares: the last message when it is the user's (its
    text parts joined), or a completion's one prompt string. None: not comparable."""
    if operation == "completions":
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) and prompt.strip() else None
    if operation != "chat":
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content if content.strip() else None
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        if (
            parts
            and all(p.get("type") == "text" for p in content if isinstance(p, dict))
            and all(isinstance(t, str) for t in parts)
        ):
            text = "\n".join(t for t in parts if isinstance(t, str))
            return text if text.strip() else None
    return None


def partition_key(
    namespace: str, operation: Operation, alias: str, config_hash: str, body: dict[str, Any]
) -> str:
    """Everything but the compared text: system prompt, earlier turns, tools, response
    format, sampling parameters, model and tenant. A semantic hit never crosses it."""
    context = canonical_body(operation, body)
    if operation == "chat":
        context["messages"] = [*context["messages"][:-1], {"role": "user", "content": None}]
    else:
        context["prompt"] = None
    return digest([KEY_VERSION, "semantic", namespace, operation, alias, config_hash, context])
