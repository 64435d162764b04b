"""A BERT sentence encoder (all-MiniLM-L6-v2's shape) as an onnxruntime graph built
from its safetensors weights: embeddings, post-LN encoder layers, mean pooling over
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
    d = c.hidden // c.heads
    g.op("Shape", ["input_ids"], "shape")
    g.op("Gather", ["shape", g.const("one", np.array(1, np.int64))], "seq")
    g.op("Range", [g.const("zero", np.array(0, np.int64)), "seq",
                   g.const("step", np.array(1, np.int64))], "positions")  # fmt: skip
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "w")
    pos = g.op("Gather", [g.weight("embeddings.position_embeddings.weight"), "positions"], "p")
    kind = g.const("type0", weights["embeddings.token_type_embeddings.weight"][0])
    x = g.op("Add", [g.op("Add", [words, pos], "wp"), kind], "emb")
    x = g.norm(x, "embeddings.LayerNorm", "x", c.eps)
    # additive mask [B, 1, 1, S]: 0 where attended, -1e4 on padding
    g.op("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)
    g.op("Unsqueeze", ["maskf", g.const("axes12", np.array([1, 2], np.int64))], "mask4")
    g.op("Sub", [g.const("onef", np.array(1.0, np.float32)), "mask4"], "inv")
    bias = g.op("Mul", ["inv", g.const("neg", np.array(-1e4, np.float32))], "mask_bias")
    heads_shape = g.const("heads_shape", np.array([0, 0, c.heads, d], np.int64))
    flat_shape = g.const("flat_shape", np.array([0, 0, c.hidden], np.int64))
    scale = g.const("scale", np.array(d**-0.5, np.float32))
    for i in range(c.layers):
        p = f"encoder.layer.{i}."
        parts = []
        for name, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            y = g.linear(x, p + "attention.self." + name, f"l{i}.{name}")
            y = g.op("Reshape", [y, heads_shape], f"l{i}.{name}.h")
            parts.append(g.op("Transpose", [y], f"l{i}.{name}.t", perm=perm))
        q, k, v = parts
        s = g.op("MatMul", [q, k], f"l{i}.s")
        s = g.op("Add", [g.op("Mul", [s, scale], f"l{i}.ss"), bias], f"l{i}.sm")
        a = g.op("MatMul", [g.op("Softmax", [s], f"l{i}.p", axis=-1), v], f"l{i}.a")
        a = g.op("Transpose", [a], f"l{i}.at", perm=[0, 2, 1, 3])
        a = g.op("Reshape", [a, flat_shape], f"l{i}.af")
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model
