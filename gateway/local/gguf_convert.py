"""GGUF (llama.cpp's format) → a model directory the `onnx` provider runs.

Reads the weights with the `gguf` package and keeps them 4-bit: Q4_1 blocks become
MatMulNBits blocks as they are (see `quant.py`). Q and K rows are put back in
Hugging Face's rotary order (llama.cpp's converter interleaves them). The BPE
vocabulary, merges, special tokens and chat template come from the GGUF metadata.

Writes `model.onnx`, `tokenizer.json` and `gateway_model.json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, ReaderTensor
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from gateway.local.llama_graph import LayerWeights, LlamaConfig, LlamaWeights, build_llama
from gateway.local.quant import F32, Q4Matrix, Q8Matrix

CONVERTER = 2  # bumped when the graph changes: cached conversions are then redone
CONTROL_TOKEN = 3
PRE_TOKENIZERS = {"smollm", "gpt2", "default"}  # byte-level BPE with GPT-2's pattern
Progress = Callable[[str], None]


class ConversionError(Exception):
    pass


def _field(reader: GGUFReader, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_config(reader: GGUFReader) -> LlamaConfig:
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ConversionError(f"unsupported architecture {arch!r} (only llama)")
    return LlamaConfig(
        vocab_size=len(_field(reader, "tokenizer.ggml.tokens")),
        hidden=int(_field(reader, "llama.embedding_length")),
        intermediate=int(_field(reader, "llama.feed_forward_length")),
        layers=int(_field(reader, "llama.block_count")),
        heads=int(_field(reader, "llama.attention.head_count")),
        kv_heads=int(_field(reader, "llama.attention.head_count_kv")),
        rope_theta=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        rms_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        context_length=int(_field(reader, "llama.context_length")),
    )


def _q4(tensor: ReaderTensor) -> Q4Matrix:
    k, n = (int(x) for x in tensor.shape)
    if tensor.tensor_type != GGMLQuantizationType.Q4_1:
        raise ConversionError(f"{tensor.name}: {tensor.tensor_type.name} (expected Q4_1)")
    return Q4Matrix.from_ggml_q4_1(np.asarray(tensor.data), n, k)


def _unpermute(matrix: Q4Matrix, heads: int) -> Q4Matrix:
    """Undo llama.cpp's rotary interleaving of Q/K rows (pairs (2i, 2i+1) → (i, i+D/2))."""
    n, _ = matrix.shape
    dim = n // heads
    order = np.arange(n).reshape(heads, dim // 2, 2).transpose(0, 2, 1).reshape(-1)
    return matrix.take_rows(order)


def read_weights(reader: GGUFReader, config: LlamaConfig) -> LlamaWeights:
    tensors = {t.name: t for t in reader.tensors}
    if "output.weight" in tensors:
        raise ConversionError("untied output head is not supported yet")
    embed = tensors["token_embd.weight"]
    if embed.tensor_type != GGMLQuantizationType.Q8_0:
        raise ConversionError(f"token_embd.weight: {embed.tensor_type.name} (expected Q8_0)")
    embedding = Q8Matrix.from_ggml_q8_0(np.asarray(embed.data), config.vocab_size, config.hidden)

    def norm(name: str) -> F32:
        values: F32 = np.asarray(tensors[name].data, np.float32).reshape(-1)
        return values

    layers = []
    for i in range(config.layers):
        p = f"blk.{i}."
        q = _unpermute(_q4(tensors[p + "attn_q.weight"]), config.heads)
        k = _unpermute(_q4(tensors[p + "attn_k.weight"]), config.kv_heads)
        v = _q4(tensors[p + "attn_v.weight"])
        gate_up = Q4Matrix.stack([_q4(tensors[p + "ffn_gate.weight"]),
                                  _q4(tensors[p + "ffn_up.weight"])])  # fmt: skip
        layers.append(
            LayerWeights(
                norm(p + "attn_norm.weight"),
                Q4Matrix.stack([q, k, v]),
                _q4(tensors[p + "attn_output.weight"]),
                norm(p + "ffn_norm.weight"),
                gate_up,
                _q4(tensors[p + "ffn_down.weight"]),
            )
        )
    return LlamaWeights(config, embedding, layers, norm("output_norm.weight"))


def build_tokenizer(reader: GGUFReader) -> Tokenizer:
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    if _field(reader, "tokenizer.ggml.model") != "gpt2" or pre not in PRE_TOKENIZERS:
        raise ConversionError(f"unsupported tokenizer (model gpt2 expected, pre {pre!r})")
    tokens: list[str] = _field(reader, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
    vocab = {token: i for i, token in enumerate(tokens)}
    for merge in merges:  # checked here: tokenizers reports it as a bare Exception
        if len(merge) != 2 or any(part not in vocab for part in (*merge, "".join(merge))):
            raise ConversionError(f"tokenizer: merge {' '.join(merge)!r} is not in the vocabulary")
    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
    parts: list[pre_tokenizers.PreTokenizer] = []
    if pre == "smollm":
        parts.append(pre_tokenizers.Digits(individual_digits=True))
    parts.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(parts)
    tokenizer.decoder = decoders.ByteLevel()
    types = _field(reader, "tokenizer.ggml.token_type", [])
    special = [tokens[i] for i, kind in enumerate(types) if kind == CONTROL_TOKEN]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    return tokenizer


def convert(gguf_path: Path, out_dir: Path, progress: Progress = lambda _: None) -> None:
    """Convert one GGUF file into `out_dir` (written atomically by the caller)."""
    progress("reading GGUF")
    reader = GGUFReader(gguf_path)
    config = read_config(reader)
    weights = read_weights(reader, config)
    progress("building the onnxruntime graph")
    model = build_llama(weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(model.SerializeToString())
    np.savez(out_dir / "head.npz", codes=weights.embed.codes, scales=weights.embed.scales)
    progress("writing the tokenizer")
    tokenizer = build_tokenizer(reader)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    tokens = _field(reader, "tokenizer.ggml.tokens")
    eos = int(_field(reader, "tokenizer.ggml.eos_token_id"))
    bos = _field(reader, "tokenizer.ggml.bos_token_id")
    meta = {
        "format": "llm-gateway/llama-gqa-v1",
        "converter": CONVERTER,
        "config": config.__dict__,
        "eos_token_ids": [eos],
        "bos_token": tokens[bos] if bos is not None else None,
        "eos_token": tokens[eos],
        "add_bos_token": bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        "chat_template": _field(reader, "tokenizer.chat_template"),
    }
    (out_dir / "gateway_model.json").write_text(json.dumps(meta, indent=1))
