"""A BERT sentence encoder (all-MiniLM-L6-v2's shape) as an onnxruntime graph built
from its safetensors weights: embeddings, post-LN encoder layers (attention as
onnxruntime's fused `com.microsoft.Attention`, one QKV projection), mean pooling over
the attention mask, L2 normalisation (sentence-transformers' Transformer → Pooling →
Normalize). Inputs `input_ids`, `attention_mask` [B, S] int64; output
`embeddings` [B, H].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gateway.local.quant import F32


@dataclass(frozen=True)
class BertConfig:
    hidden: int = 384
    heads: int = 12
    layers: int = 6
    intermediate: int = 1536
    eps: float = 1e-12
    max_positions: int = 512


class _Graph:
    def __init__(self, weights: dict[str, F32]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray[Any, Any]) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, name: str, transpose: bool = False) -> str:
        value = self.weights[name]
        return self.const(name, np.ascontiguousarray(value.T if transpose else value))

    def op(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], f"n{len(self.nodes)}", **attrs))
        return output

    def linear(self, x: str, prefix: str, out: str) -> str:
        y = self.op("MatMul", [x, self.weight(prefix + ".weight", transpose=True)], out + ".mm")
        return self.op("Add", [y, self.weight(prefix + ".bias")], out)

    def norm(self, x: str, prefix: str, out: str, eps: float) -> str:
        scale, bias = self.weight(prefix + ".weight"), self.weight(prefix + ".bias")
        return self.op("LayerNormalization", [x, scale, bias], out, axis=-1, epsilon=eps)


def build_bert(weights: dict[str, F32], config: BertConfig) -> onnx.ModelProto:
    g, c = _Graph(weights), config
    g.op("Shape", ["input_ids"], "shape")
    g.op("Gather", ["shape", g.const("one", np.array(1, np.int64))], "seq")
    g.op("Range", [g.const("zero", np.array(0, np.int64)), "seq",
                   g.const("step", np.array(1, np.int64))], "positions")  # fmt: skip
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "w")
    pos = g.op("Gather", [g.weight("embeddings.position_embeddings.weight"), "positions"], "p")
    kind = g.const("type0", weights["embeddings.token_type_embeddings.weight"][0])
    x = g.op("Add", [g.op("Add", [words, pos], "wp"), kind], "emb")
    x = g.norm(x, "embeddings.LayerNorm", "x", c.eps)
    # onnxruntime's fused Attention (one QKV projection; padding masked by the raw mask)
    mask = g.op("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    g.op("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)
    for i in range(c.layers):
        p = f"encoder.layer.{i}."
        names = [p + "attention.self." + n for n in ("query", "key", "value")]
        qkv = g.const(f"l{i}.qkv.w", np.ascontiguousarray(
            np.concatenate([weights[n + ".weight"].T for n in names], axis=1)))  # fmt: skip
        qkv_bias = g.const(f"l{i}.qkv.b", np.concatenate([weights[n + ".bias"] for n in names]))
        a = g.op("Attention", [x, qkv, qkv_bias, mask], f"l{i}.a", domain="com.microsoft",
                 num_heads=c.heads)  # fmt: skip
        a = g.linear(a, p + "attention.output.dense", f"l{i}.o")
        x = g.norm(g.op("Add", [a, x], f"l{i}.r1"), p + "attention.output.LayerNorm",
                   f"l{i}.x1", c.eps)  # fmt: skip
        h = g.op("Gelu", [g.linear(x, p + "intermediate.dense", f"l{i}.i")], f"l{i}.g")
        h = g.linear(h, p + "output.dense", f"l{i}.d")
        x = g.norm(g.op("Add", [h, x], f"l{i}.r2"), p + "output.LayerNorm", f"l{i}.x", c.eps)
    g.op("Unsqueeze", ["maskf", g.const("axis2", np.array([2], np.int64))], "mask3")
    axis1 = g.const("axis1", np.array([1], np.int64))
    total = g.op("ReduceSum", [g.op("Mul", [x, "mask3"], "masked"), axis1], "total", keepdims=0)
    count = g.op("ReduceSum", ["mask3", axis1], "count", keepdims=0)
    count = g.op("Max", [count, g.const("tiny", np.array(1e-9, np.float32))], "count1")
    mean = g.op("Div", [total, count], "mean")
    norm = g.op("ReduceL2", [mean, g.const("axis_last", np.array([-1], np.int64))], "l2",
                keepdims=1)  # fmt: skip
    norm = g.op("Max", [norm, g.const("eps12", np.array(1e-12, np.float32))], "l2c")
    g.op("Div", [mean, norm], "embeddings")
    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
           for n in ("input_ids", "attention_mask")]  # fmt: skip
    out = [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", c.hidden])]
    graph = helper.make_graph(g.nodes, "bert", ids, out, g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 10
    return model
