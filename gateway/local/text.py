"""Text in and out of a local chat model: the model's own chat template (rendered in
a Jinja sandbox, as Hugging Face does), its tokenizer, incremental detokenisation
that never splits a UTF-8 character, and stop sequences held back until decided."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

from gateway.errors import InvalidRequest


class ChatText:
    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.meta = meta
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        template = meta.get("chat_template") or DEFAULT_TEMPLATE
        self.template = env.from_string(template)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ids

    def chat_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        flat = [{**m, "content": _content_text(m.get("content"))} for m in messages]
        try:
            text = self.template.render(
                messages=flat,
                add_generation_prompt=True,
                bos_token=self.meta.get("bos_token") or "",
                eos_token=self.meta.get("eos_token") or "",
            )
        except TemplateError as exc:
            raise InvalidRequest(f"messages: {exc}", param="messages") from None
        return self.encode(text)

    def decoder(self) -> DecodeStream:
        return DecodeStream(skip_special_tokens=True)


def _raise(message: str) -> None:
    raise TemplateError(message)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest("local models accept text content parts only",
                                     param="messages")  # fmt: skip
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise InvalidRequest("message content must be a string or a list of parts", param="messages")


DEFAULT_TEMPLATE = (  # ChatML, for exports whose tokenizer config has no template
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class StopFilter:
    """Releases generated text except a tail that could still begin a stop sequence."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        self.pending += text
        for stop in self.stops:
            at = self.pending.find(stop)
            if at >= 0:
                self.stopped = True
                released, self.pending = self.pending[:at], ""
                return released
        keep = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:size]):
                    keep = max(keep, size)
                    break
        cut = len(self.pending) - keep
        released, self.pending = self.pending[:cut], self.pending[cut:]
        return released

    def flush(self) -> str:
        released, self.pending = self.pending, ""
        return released
