"""A tiny randomly initialised chat model directory, in the layout the converter writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from gateway.local.llama_graph import LlamaConfig, LlamaWeights, build_llama

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer() -> Tokenizer:
    """Byte-level BPE with no merges: one token per byte, so multi-byte characters
    always span several tokens."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    vocab.update({ch: len(SPECIALS) + i for i, ch in enumerate(sorted(alphabet))})
    tokenizer = Tokenizer(models.BPE(vocab, []))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in SPECIALS])
    return tokenizer


def tiny_config(context: int = 128) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(SPECIALS) + 256, hidden=64, intermediate=128, layers=2,
                       heads=4, kv_heads=2, rope_theta=10000.0, rms_eps=1e-5,
                       context_length=context)  # fmt: skip


def write_tiny_model(
    directory: Path, seed: int = 0, context: int = 128, accuracy: int = 0
) -> LlamaWeights:
    weights = LlamaWeights.random(tiny_config(context), seed)
    directory.mkdir(parents=True, exist_ok=True)
    model = build_llama(weights, accuracy, accuracy)
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    np.savez(directory / "head.npz", codes=weights.embed.codes, scales=weights.embed.scales)
    byte_tokenizer().save(str(directory / "tokenizer.json"))
    meta = {
        "format": "llm-gateway/llama-gqa-v1",
        "config": weights.config.__dict__,
        "eos_token_ids": [2],
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "add_bos_token": False,
        "chat_template": TEMPLATE,
    }
    (directory / "gateway_model.json").write_text(json.dumps(meta))
    return weights
