"""Decoder exports in Hugging Face optimum's layout, so users can drop in other models:
`model.onnx` taking `input_ids`, `attention_mask`, `position_ids` and
`past_key_values.{i}.key/value`, returning `logits` and `present.{i}.key/value` (caches
that grow by concatenation), with `config.json`, `tokenizer.json` and
`tokenizer_config.json` (chat template, special tokens) beside it.

Each sequence keeps its own cache arrays; a batched decode step left-pads them to the
longest (masked out by `attention_mask`) and splits the presents back. That copies the
caches every step, so it batches less efficiently than the built-in GQA graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from gateway.local.engine import CPU, RUN_ERRORS, EngineFailure, session_options
from gateway.local.quant import F32

I64 = npt.NDArray[np.int64]
Cache = list[tuple[F32, F32]]  # per layer: key, value [1, kv, L, D]


def is_optimum(directory: Path) -> bool:
    return all((directory / f).is_file() for f in ("model.onnx", "config.json", "tokenizer.json"))


def optimum_meta(directory: Path) -> dict[str, Any]:
    """The fields `ChatText` and the scheduler need, from the Hugging Face files."""
    config = json.loads((directory / "config.json").read_text())
    tokenizer_config: dict[str, Any] = {}
    if (directory / "tokenizer_config.json").is_file():
        tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
    eos = config.get("eos_token_id")
    generation = directory / "generation_config.json"
    if generation.is_file():
        eos = json.loads(generation.read_text()).get("eos_token_id", eos)

    def token(key: str) -> str | None:
        value = tokenizer_config.get(key)
        return value.get("content") if isinstance(value, dict) else value

    return {
        "eos_token_ids": eos if isinstance(eos, list) else [eos],
        "bos_token": token("bos_token"),
        "eos_token": token("eos_token"),
        "chat_template": tokenizer_config.get("chat_template"),
        "context_length": int(config.get("max_position_embeddings", 2048)),
    }


class OptimumEngine:
    def __init__(self, directory: Path, slots: int, threads: int, context: int) -> None:
        config = json.loads((directory / "config.json").read_text())
        self.session = ort.InferenceSession(
            str(directory / "model.onnx"), session_options(threads), providers=CPU
        )
        self.layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        self.kv_heads = int(config.get("num_key_value_heads", heads))
        self.head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
        self.slots = slots
        self._context = min(context, int(config.get("max_position_embeddings", context)))
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.caches: list[Cache | None] = [None] * slots

    @property
    def context_length(self) -> int:
        return self._context

    def _empty(self) -> Cache:
        shape = (1, self.kv_heads, 0, self.head_dim)
        return [(np.zeros(shape, np.float32), np.zeros(shape, np.float32))] * self.layers

    def _run(self, ids: I64, mask: I64, positions: I64,
             past: list[tuple[F32, F32]]) -> tuple[F32, list[tuple[F32, F32]]]:  # fmt: skip
        feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "position_ids" in self.inputs:
            feed["position_ids"] = positions
        for i, (key, value) in enumerate(past):
            feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = key, value
        try:
            out = self.session.run(None, feed)
        except RUN_ERRORS as exc:
            raise EngineFailure(str(exc)) from exc
        presents = [(out[1 + 2 * i], out[2 + 2 * i]) for i in range(self.layers)]
        logits: F32 = out[0][:, -1, :]
        return logits, presents

    def prefill(self, row: int, ids: list[int]) -> F32:
        tokens = np.array([ids], np.int64)
        positions = np.arange(len(ids), dtype=np.int64)[None]
        logits, presents = self._run(tokens, np.ones_like(tokens), positions, self._empty())
        self.caches[row] = presents
        first: F32 = logits[0]
        return first

    def decode(self, ids: list[int], lengths: list[int]) -> F32:
        longest = max(lengths)
        past = []
        for layer in range(self.layers):
            keys, values = [], []
            for row, length in enumerate(lengths):
                cache = self.caches[row]
                assert cache is not None
                pad = ((0, 0), (0, 0), (longest - length, 0), (0, 0))
                keys.append(np.pad(cache[layer][0], pad))
                values.append(np.pad(cache[layer][1], pad))
            past.append((np.concatenate(keys), np.concatenate(values)))
        mask = np.zeros((len(ids), longest + 1), np.int64)
        for row, length in enumerate(lengths):
            mask[row, longest - length :] = 1
        positions = np.array(lengths, np.int64)[:, None]
        logits, presents = self._run(np.array(ids, np.int64)[:, None], mask, positions, past)
        for row, length in enumerate(lengths):
            start = longest - length
            self.caches[row] = [(k[row : row + 1, :, start:], v[row : row + 1, :, start:])
                                for k, v in presents]  # fmt: skip
        return logits

    def move(self, source: int, target: int, length: int) -> None:
        self.caches[target], self.caches[source] = self.caches[source], None
