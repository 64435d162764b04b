"""A tiny LLaMA written out in Hugging Face optimum's ONNX layout (standard ops, caches
grown by concatenation, attention_mask and position_ids inputs), with the config and
tokenizer files beside it: what a user's drop-in export looks like."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gateway.local.llama_graph import LlamaWeights, rotary_cache
from tests.local.tiny import TEMPLATE, byte_tokenizer


class Graph:
    def __init__(self) -> None:
        self.nodes: list[object] = []
        self.inits: list[object] = []
        self.count = 0

    def c(self, value: np.ndarray[Any, Any]) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op: str, *inputs: str, **attrs: Any) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def rms(self, x: str, w: np.ndarray[Any, Any], eps: float) -> str:
        mean = self.op("ReduceMean", self.op("Mul", x, x), self.c(np.array([-1])), keepdims=1)
        root = self.op("Sqrt", self.op("Add", mean, self.c(np.array(eps, np.float32))))
        return self.op("Mul", self.op("Div", x, root), self.c(w))

    def heads(self, x: str, n: int, d: int) -> str:
        shaped = self.op("Reshape", x, self.c(np.array([0, 0, n, d])))
        return self.op("Transpose", shaped, perm=[0, 2, 1, 3])

    def rotate(self, x: str, cos: str, sin: str, d: int) -> str:
        half = self.c(np.array([d // 2, d // 2]))
        self.count += 1
        x1, x2 = f"t{self.count}a", f"t{self.count}b"
        self.nodes.append(helper.make_node("Split", [x, half], [x1, x2], axis=-1))
        rotated = self.op("Concat", self.op("Neg", x2), x1, axis=-1)
        return self.op("Add", self.op("Mul", x, cos), self.op("Mul", rotated, sin))


def write_optimum_model(directory: Path, weights: LlamaWeights) -> None:
    c, g = weights.config, Graph()
    d, group = c.head_dim, c.heads // c.kv_heads
    embed = weights.embed.dequantize()
    x = g.op("Gather", g.c(embed), "input_ids")
    cos_t, sin_t = rotary_cache(c)
    cos = g.op("Unsqueeze", g.op("Gather", g.c(np.concatenate([cos_t, cos_t], 1)), "position_ids"),
               g.c(np.array([1])))  # fmt: skip
    sin = g.op("Unsqueeze", g.op("Gather", g.c(np.concatenate([sin_t, sin_t], 1)), "position_ids"),
               g.c(np.array([1])))  # fmt: skip
    total = g.op("Gather", g.op("Shape", "attention_mask"), g.c(np.array(1)))
    seq = g.op("Gather", g.op("Shape", "input_ids"), g.c(np.array(1)))
    keys = g.op("Range", g.c(np.array(0)), total, g.c(np.array(1)))
    queries = g.op("Range", g.op("Sub", total, seq), total, g.c(np.array(1)))
    causal = g.op("LessOrEqual", g.op("Unsqueeze", keys, g.c(np.array([0]))),
                  g.op("Unsqueeze", queries, g.c(np.array([1]))))  # fmt: skip
    padding = g.op("Unsqueeze", g.op("Cast", "attention_mask", to=TensorProto.BOOL),
                   g.c(np.array([1, 2])))  # fmt: skip
    bias = g.op("Where", g.op("And", causal, padding), g.c(np.array(0, np.float32)),
                g.c(np.array(-1e9, np.float32)))  # fmt: skip
    outputs = []
    for i, layer in enumerate(weights.layers):
        qkv = layer.qkv.dequantize()
        wq, wk, wv = np.split(qkv, [c.heads * d, (c.heads + c.kv_heads) * d])
        h = g.rms(x, layer.attn_norm, c.rms_eps)
        q = g.rotate(g.heads(g.op("MatMul", h, g.c(wq.T.copy())), c.heads, d), cos, sin, d)
        k = g.rotate(g.heads(g.op("MatMul", h, g.c(wk.T.copy())), c.kv_heads, d), cos, sin, d)
        v = g.heads(g.op("MatMul", h, g.c(wv.T.copy())), c.kv_heads, d)
        k_all = g.op("Concat", f"past_key_values.{i}.key", k, axis=2)
        v_all = g.op("Concat", f"past_key_values.{i}.value", v, axis=2)
        g.nodes += [helper.make_node("Identity", [k_all], [f"present.{i}.key"]),
                    helper.make_node("Identity", [v_all], [f"present.{i}.value"])]  # fmt: skip
        outputs += [f"present.{i}.key", f"present.{i}.value"]

        def repeat(t: str) -> str:
            tiled = g.op("Tile", g.op("Unsqueeze", t, g.c(np.array([2]))),
                         g.c(np.array([1, 1, group, 1, 1])))  # fmt: skip
            return g.op("Reshape", tiled, g.c(np.array([0, c.heads, -1, d])))

        scores = g.op("MatMul", q, g.op("Transpose", repeat(k_all), perm=[0, 1, 3, 2]))
        scores = g.op("Add", g.op("Mul", scores, g.c(np.array(d**-0.5, np.float32))), bias)
        attn = g.op("MatMul", g.op("Softmax", scores, axis=-1), repeat(v_all))
        attn = g.op("Reshape", g.op("Transpose", attn, perm=[0, 2, 1, 3]),
                    g.c(np.array([0, 0, c.hidden])))  # fmt: skip
        x = g.op("Add", x, g.op("MatMul", attn, g.c(layer.o.dequantize().T.copy())))
        h = g.rms(x, layer.ffn_norm, c.rms_eps)
        gate, up = np.split(layer.gate_up.dequantize(), 2)
        gate_out = g.op("MatMul", h, g.c(gate.T.copy()))
        act = g.op("Mul", g.op("Mul", gate_out, g.op("Sigmoid", gate_out)),
                   g.op("MatMul", h, g.c(up.T.copy())))  # fmt: skip
        x = g.op("Add", x, g.op("MatMul", act, g.c(layer.down.dequantize().T.copy())))
    logits = g.op("MatMul", g.rms(x, weights.norm, c.rms_eps), g.c(embed.T.copy()))
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    cache: list[str | int | None] = ["batch", c.kv_heads, "past", d]
    inputs = [helper.make_tensor_value_info(n, i64, ["batch", s]) for n, s in
              (("input_ids", "seq"), ("attention_mask", "total"), ("position_ids", "seq"))]  # fmt: skip
    for i in range(c.layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", f32, cache))
    outs = [helper.make_tensor_value_info("logits", f32, ["batch", "seq", c.vocab_size])]
    outs += [helper.make_tensor_value_info(n, f32, None) for n in outputs]
    graph = helper.make_graph(g.nodes, "optimum-llama", inputs, outs, g.inits)  # type: ignore[arg-type]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    config = {"num_hidden_layers": c.layers, "num_attention_heads": c.heads,
              "num_key_value_heads": c.kv_heads, "hidden_size": c.hidden,
              "max_position_embeddings": c.context_length, "eos_token_id": 2}  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config))
    byte_tokenizer().save(str(directory / "tokenizer.json"))
    tokenizer_config = {"chat_template": TEMPLATE, "eos_token": "<|im_end|>"}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
