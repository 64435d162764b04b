"""GGUF → model directory: a tiny GGUF written with llama.cpp's own writer, converted,
then run and compared with a forward pass in llama.cpp's conventions."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize
from tokenizers import Tokenizer

from gateway.local.gguf_convert import ConversionError, convert
from gateway.local.llama_graph import LayerWeights, LlamaWeights
from gateway.local.loaded import ChatModel
from gateway.local.quant import Q4Matrix, Q8Matrix
from tests.local.reference import forward
from tests.local.tiny import byte_tokenizer, tiny_config

Q4, Q8 = GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q8_0
TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"


def write_gguf(path: Path, arch: str = "llama") -> LlamaWeights:
    """Random weights as llama.cpp lays them out; returns them for the reference."""
    vocab = byte_tokenizer().get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])] + ["ab", "abc"]
    c = replace(tiny_config(context=64), vocab_size=len(tokens))
    rng = np.random.default_rng(4)
    d = c.head_dim
    writer = GGUFWriter(str(path), arch)
    writer.add_block_count(c.layers)
    writer.add_context_length(c.context_length)
    writer.add_embedding_length(c.hidden)
    writer.add_feed_forward_length(c.intermediate)
    writer.add_head_count(c.heads)
    writer.add_head_count_kv(c.kv_heads)
    writer.add_rope_freq_base(c.rope_theta)
    writer.add_layer_norm_rms_eps(c.rms_eps)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    writer.add_token_merges(["a b", "ab c"])
    writer.add_eos_token_id(2)
    writer.add_bos_token_id(1)
    writer.add_add_bos_token(False)
    writer.add_chat_template(TEMPLATE)

    def q4(name: str, n: int, k: int) -> Q4Matrix:
        raw = quantize(rng.standard_normal((n, k)).astype(np.float32) / np.sqrt(k), Q4)
        writer.add_tensor(name, raw, raw_dtype=Q4)
        return Q4Matrix.from_ggml_q4_1(raw, n, k)

    def f32(name: str, n: int) -> np.ndarray:
        value = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        writer.add_tensor(name, value)
        return value

    embed_raw = quantize(rng.standard_normal((c.vocab_size, c.hidden)).astype(np.float32), Q8)
    writer.add_tensor("token_embd.weight", embed_raw, raw_dtype=Q8)
    layers = []
    for i in range(c.layers):
        p = f"blk.{i}."
        norm1 = f32(p + "attn_norm.weight", c.hidden)
        q = q4(p + "attn_q.weight", c.heads * d, c.hidden)
        k = q4(p + "attn_k.weight", c.kv_heads * d, c.hidden)
        v = q4(p + "attn_v.weight", c.kv_heads * d, c.hidden)
        o = q4(p + "attn_output.weight", c.hidden, c.heads * d)
        norm2 = f32(p + "ffn_norm.weight", c.hidden)
        gate = q4(p + "ffn_gate.weight", c.intermediate, c.hidden)
        up = q4(p + "ffn_up.weight", c.intermediate, c.hidden)
        down = q4(p + "ffn_down.weight", c.hidden, c.intermediate)
        layers.append(LayerWeights(norm1, Q4Matrix.stack([q, k, v]), o, norm2,
                                   Q4Matrix.stack([gate, up]), down))  # fmt: skip
    norm = f32("output_norm.weight", c.hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    embed = Q8Matrix.from_ggml_q8_0(embed_raw, c.vocab_size, c.hidden)
    return LlamaWeights(c, embed, layers, norm)


def test_converted_model_matches_llama_cpp_conventions(tmp_path: Path) -> None:
    weights = write_gguf(tmp_path / "tiny.gguf")
    convert(tmp_path / "tiny.gguf", tmp_path / "out")
    model = ChatModel(tmp_path / "out", slots=1, threads=1, context=64)
    try:
        ids = [40, 41, 42, 43, 44, 45, 46]
        ref = forward(weights, ids, interleaved=True)[-1]
        got = model.scheduler.engine.prefill(0, ids)
        top = np.nonzero(ref >= ref.max() - 1.0)[0]  # the exactly rescored candidates
        np.testing.assert_allclose(got[top], ref[top], rtol=1e-3, atol=1e-3)
        assert model.text.chat_prompt([{"role": "user", "content": "hi"}]) == model.text.encode(
            "[user] hi\n"
        )
    finally:
        model.close()


def test_tokenizer_from_gguf_metadata(tmp_path: Path) -> None:
    write_gguf(tmp_path / "tiny.gguf")
    convert(tmp_path / "tiny.gguf", tmp_path / "out")
    tokenizer = Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json"))
    encoded = tokenizer.encode("abc 42<|im_end|>", add_special_tokens=False)
    assert encoded.tokens[0] == "abc"  # the merges apply
    assert "4" in encoded.tokens and "2" in encoded.tokens  # digits one by one (smollm)
    assert encoded.tokens[-1] == "<|im_end|>"  # control tokens stay whole
    assert tokenizer.decode(encoded.ids, skip_special_tokens=True) == "abc 42"


def test_unsupported_architecture_is_refused(tmp_path: Path) -> None:
    write_gguf(tmp_path / "other.gguf", arch="qwen2")
    with pytest.raises(ConversionError, match="qwen2"):
        convert(tmp_path / "other.gguf", tmp_path / "out")
