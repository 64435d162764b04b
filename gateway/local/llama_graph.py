"""A LLaMA-family decoder as an onnxruntime graph, built from block-quantized weights.

Per layer: RMSNorm (fused with the residual add), one `MatMulNBits` for q/k/v,
`GroupQueryAttention` (rotary embedding inside, KV cache in a buffer shared between
past and present so a decode step copies nothing), one `MatMulNBits` for gate/up,
SiLU, `MatMulNBits` down. The head's logits are computed for the last position only.

Inputs: `input_ids` [B, S] int64, `seqlens_k` [B] int32 (each row's total length - 1),
`total_sequence_length` int32 scalar, `past_key_{i}` / `past_value_{i}` [B, kv, L, D].
Outputs: `logits` [B, V] (int8 activations: ~0.5% error), `hidden` [B, H] (the
final normalised state, for rescoring the top candidates exactly), `present_key_{i}` /
`present_value_{i}` (the same buffers as the inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gateway.local.quant import BLOCK, F32, Q4Matrix, Q8Matrix

OPSETS = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    rope_theta: float
    rms_eps: float
    context_length: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class LayerWeights:
    attn_norm: F32
    qkv: Q4Matrix  # rows: q (heads*D), k (kv*D), v (kv*D); rotary pairs in HF order
    o: Q4Matrix
    ffn_norm: F32
    gate_up: Q4Matrix  # rows: gate (I), up (I)
    down: Q4Matrix


@dataclass(frozen=True)
class LlamaWeights:
    config: LlamaConfig
    embed: Q8Matrix  # [V, H], tied to the output head
    layers: list[LayerWeights]
    norm: F32

    @classmethod
    def random(cls, config: LlamaConfig, seed: int = 0) -> LlamaWeights:
        """A randomly initialised model (small configs keep unit tests fast)."""
        rng = np.random.default_rng(seed)
        c, d = config, config.head_dim

        def mat(n: int, k: int) -> F32:
            values: F32 = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
            return values

        def norm() -> F32:
            return (1 + 0.1 * rng.standard_normal(c.hidden)).astype(np.float32)

        layers = [
            LayerWeights(
                norm(),
                Q4Matrix.quantize(mat((c.heads + 2 * c.kv_heads) * d, c.hidden)),
                Q4Matrix.quantize(mat(c.hidden, c.heads * d)),
                norm(),
                Q4Matrix.quantize(mat(2 * c.intermediate, c.hidden)),
                Q4Matrix.quantize(mat(c.hidden, c.intermediate)),
            )
            for _ in range(c.layers)
        ]
        return cls(config, Q8Matrix.quantize(mat(c.vocab_size, c.hidden) * 4), layers, norm())


def rotary_cache(config: LlamaConfig) -> tuple[F32, F32]:
    half = config.head_dim // 2
    inv_freq = 1.0 / (config.rope_theta ** (np.arange(half, dtype=np.float64) / half))
    angles = np.outer(np.arange(config.context_length, dtype=np.float64), inv_freq)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray[Any, Any]) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        domain = "com.microsoft" if op in MICROSOFT_OPS else ""
        name = f"{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, outputs, name, domain=domain, **attrs))

    def matmul4(self, x: str, w: Q4Matrix, name: str, accuracy: int) -> str:
        """x @ w.T for a Q4 weight: MatMulNBits (zero point 8) + block offsets term."""
        n, k = w.shape
        inputs = [x, self.const(f"{name}.codes", w.codes),
                  self.const(f"{name}.scales", w.scales.reshape(-1))]  # fmt: skip
        self.node("MatMulNBits", inputs, [f"{name}.q"], K=k, N=n, bits=4, block_size=BLOCK,
                  accuracy_level=accuracy)  # fmt: skip
        sums = np.kron(np.eye(k // BLOCK, dtype=np.float32), np.ones((BLOCK, 1), np.float32))
        self.node("MatMul", [x, self.const(f"{name}.blocksum", sums)], [f"{name}.xs"])
        offsets = self.const(f"{name}.offsets", np.ascontiguousarray(w.offsets.T))
        self.node("Gemm", [f"{name}.xs", offsets, f"{name}.q"], [name])
        return name


MICROSOFT_OPS = {
    "MatMulNBits",
    "GroupQueryAttention",
    "SkipSimplifiedLayerNormalization",
    "GatherBlockQuantized",
}


def build_llama(
    weights: LlamaWeights, accuracy_level: int = 4, down_accuracy: int = 4
) -> onnx.ModelProto:
    """The decoder graph; `accuracy_level` 4 lets MatMulNBits use int8 activations."""
    c, b = weights.config, _Builder()
    eps = c.rms_eps
    embed = weights.embed
    zp = np.full(embed.scales.shape, 128, np.uint8)
    b.const("embed.codes", embed.codes)
    b.const("embed.scales", embed.scales)
    b.const("embed.zero_points", zp)
    b.node("Shape", ["input_ids"], ["batch_seq"])
    b.node("Concat", ["batch_seq", b.const("minus1", np.array([-1], np.int64))], ["bsh"], axis=0)
    b.node("Reshape", ["input_ids", "minus1"], ["tokens"])
    b.node("GatherBlockQuantized", ["embed.codes", "tokens", "embed.scales",
           "embed.zero_points"], ["x0"], bits=8, block_size=BLOCK, gather_axis=0,
           quantize_axis=1)  # fmt: skip
    cos, sin = rotary_cache(c)
    b.const("cos_cache", cos)
    b.const("sin_cache", sin)
    residual, out = "x0", ""
    for i, layer in enumerate(weights.layers):
        p = f"l{i}"
        norm = b.const(f"{p}.attn_norm", layer.attn_norm)
        if i == 0:
            b.node("SimplifiedLayerNormalization", [residual, norm], [f"{p}.h"], axis=-1,
                   epsilon=eps)  # fmt: skip
        else:
            b.node("SkipSimplifiedLayerNormalization", [out, residual, norm],
                   [f"{p}.h", "", "", f"{p}.res"], epsilon=eps)  # fmt: skip
            residual = f"{p}.res"
        qkv = b.matmul4(f"{p}.h", layer.qkv, f"{p}.qkv", accuracy_level)
        b.node("Reshape", [qkv, "bsh"], [f"{p}.qkv3"])
        b.node("GroupQueryAttention",
               [f"{p}.qkv3", "", "", f"past_key_{i}", f"past_value_{i}", "seqlens_k",
                "total_sequence_length", "cos_cache", "sin_cache"],
               [f"{p}.attn3", f"present_key_{i}", f"present_value_{i}"],
               num_heads=c.heads, kv_num_heads=c.kv_heads, do_rotary=1,
               rotary_interleaved=0, scale=float(c.head_dim**-0.5))  # fmt: skip
        b.node("Reshape", [f"{p}.attn3", b.const(f"{p}.flat", np.array([-1, c.hidden]))],
               [f"{p}.attn"])  # fmt: skip
        o = b.matmul4(f"{p}.attn", layer.o, f"{p}.o", accuracy_level)
        norm = b.const(f"{p}.ffn_norm", layer.ffn_norm)
        b.node("SkipSimplifiedLayerNormalization", [o, residual, norm],
               [f"{p}.h2", "", "", f"{p}.res2"], epsilon=eps)  # fmt: skip
        residual = f"{p}.res2"
        gate_up = b.matmul4(f"{p}.h2", layer.gate_up, f"{p}.gate_up", accuracy_level)
        b.node("Split", [gate_up], [f"{p}.gate", f"{p}.up"], axis=-1, num_outputs=2)
        b.node("Sigmoid", [f"{p}.gate"], [f"{p}.sig"])
        b.node("Mul", [f"{p}.gate", f"{p}.sig"], [f"{p}.silu"])
        b.node("Mul", [f"{p}.silu", f"{p}.up"], [f"{p}.act"])
        out = b.matmul4(f"{p}.act", layer.down, f"{p}.down", down_accuracy)
    b.node("SkipSimplifiedLayerNormalization", [out, residual, b.const("norm", weights.norm)],
           ["final"], epsilon=eps)  # fmt: skip
    b.node("Reshape", ["final", "bsh"], ["final3"])
    b.node("Gather", ["final3", b.const("last", np.array(-1, np.int64))], ["hidden"], axis=1)
    n, k = embed.shape
    b.const("head.codes", embed.codes.reshape(n, k // BLOCK, BLOCK))
    b.const("head.scales", embed.scales.reshape(-1))
    b.node("MatMulNBits", ["hidden", "head.codes", "head.scales"],
           ["logits"], K=k, N=n, bits=8, block_size=BLOCK, accuracy_level=4)  # fmt: skip
    return _model(c, b)


def _model(c: LlamaConfig, b: _Builder) -> onnx.ModelProto:
    cache: list[str | int | None] = ["batch", c.kv_heads, "max_len", c.head_dim]
    f32 = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", f32, ["batch", c.vocab_size]),
        helper.make_tensor_value_info("hidden", f32, ["batch", c.hidden]),
    ]
    for i in range(c.layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{i}", f32, cache))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}_{i}", f32, cache))
    graph = helper.make_graph(b.nodes, "llama", inputs, outputs, b.initializers)
    model = helper.make_model(graph, opset_imports=OPSETS, producer_name="llm-gateway")
    model.ir_version = 10
    return model
