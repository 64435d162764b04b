"""A model directory loaded for serving: a chat decoder behind its scheduler, or a
sentence encoder. Both run on threads, never on the event loop."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.local.engine import LlamaEngine, session_options
from gateway.local.int8 import quantized
from gateway.local.llama_graph import LlamaConfig
from gateway.local.optimum import OptimumEngine, is_optimum, optimum_meta
from gateway.local.quant import F32, Q8Matrix
from gateway.local.scheduler import Scheduler
from gateway.local.text import ChatText

MAX_EMBED_TOKENS = 256  # all-MiniLM-L6-v2 was trained on up to 256 word pieces
# MatMulNBits accuracy levels (prompt, decoding) per policy `precision`: 0 float32
# activations, 4 int8 activations
ACCURACY = {"exact": (0, 0), "mixed": (0, 4), "fast": (4, 4)}


class ModelLoadError(Exception):
    pass


def read_meta(directory: Path) -> dict[str, Any]:
    path = directory / "gateway_model.json"
    if not path.is_file():
        raise ModelLoadError(f"{directory}: no gateway_model.json (run `gateway models pull`)")
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


class ChatModel:
    def __init__(
        self, directory: Path, slots: int, threads: int, context: int, precision: str = "mixed"
    ) -> None:
        if not (directory / "gateway_model.json").is_file() and is_optimum(directory):
            meta = optimum_meta(directory)
            optimum = OptimumEngine(directory, slots, threads, context)
            self.text = ChatText(directory, meta)
            self.context_length = optimum.context_length
            self.scheduler = Scheduler(optimum, self.text, set(meta["eos_token_ids"]))
            return
        meta = read_meta(directory)
        if meta.get("format") != "llm-gateway/llama-gqa-v1":
            raise ModelLoadError(f"{directory}: not a chat model ({meta.get('format')})")
        config = LlamaConfig(**meta["config"])
        config = replace(config, context_length=min(context, config.context_length))
        with np.load(directory / "head.npz") as head:
            q8 = Q8Matrix(head["codes"], head["scales"])
        accuracy = ACCURACY[precision]
        engine = LlamaEngine(directory / "model.onnx", config, q8, slots, threads, accuracy)
        self.text = ChatText(directory, meta)
        self.context_length = config.context_length
        self.scheduler = Scheduler(engine, self.text, set(meta["eos_token_ids"]))

    def close(self) -> None:
        self.scheduler.close()


class EmbeddingModel:
    """Sentence embeddings; one onnxruntime session serialised by a lock (a batch per
    request: requests with many inputs are what makes it efficient)."""

    dimensions = 384

    def __init__(self, directory: Path, threads: int, int8: bool = False) -> None:
        """`int8`: the dynamically quantized encoder (gateway/local/int8.py)."""
        meta = read_meta(directory)
        if meta.get("format") != "llm-gateway/bert-v1":
            raise ModelLoadError(f"{directory}: not an embedding model ({meta.get('format')})")
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_EMBED_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.session = ort.InferenceSession(
            str(quantized(directory) if int8 else directory / "model.onnx"),
            session_options(threads),
            providers=["CPUExecutionProvider"],
        )
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> tuple[F32, int]:
        """L2-normalised embeddings [len(texts), 384] and the number of input tokens."""
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], np.int64)
        mask = np.array([e.attention_mask for e in encoded], np.int64)
        with self._lock:
            out = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
        vectors: F32 = out[0]
        return vectors, int(mask.sum())
