"""The sentence-encoder graph against a numpy forward pass of the same BERT: a tiny
random model, a batch with padding (fused attention must ignore padded positions)."""

import math
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.local.bert_graph import BertConfig, build_bert

CONFIG = BertConfig(hidden=32, heads=4, layers=2, intermediate=64, max_positions=16)


def random_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, i = CONFIG.hidden, CONFIG.intermediate
    w = {
        "embeddings.word_embeddings.weight": rng.normal(size=(50, h)),
        "embeddings.position_embeddings.weight": rng.normal(size=(CONFIG.max_positions, h)),
        "embeddings.token_type_embeddings.weight": rng.normal(size=(2, h)),
        "embeddings.LayerNorm.weight": 1 + 0.1 * rng.normal(size=h),
        "embeddings.LayerNorm.bias": 0.1 * rng.normal(size=h),
    }
    for layer in range(CONFIG.layers):
        p = f"encoder.layer.{layer}."
        shapes = {"attention.self.query": (h, h), "attention.self.key": (h, h),
                  "attention.self.value": (h, h), "attention.output.dense": (h, h),
                  "intermediate.dense": (i, h), "output.dense": (h, i)}  # fmt: skip
        for name, shape in shapes.items():
            w[p + name + ".weight"] = rng.normal(size=shape) / math.sqrt(shape[1])
            w[p + name + ".bias"] = 0.1 * rng.normal(size=shape[0])
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + norm + ".weight"] = 1 + 0.1 * rng.normal(size=h)
            w[p + norm + ".bias"] = 0.1 * rng.normal(size=h)
    return {k: v.astype(np.float32) for k, v in w.items()}


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Any:
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + CONFIG.eps) * w + b


def reference(w: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray) -> Any:
    batch, seq = ids.shape
    heads, d = CONFIG.heads, CONFIG.hidden // CONFIG.heads
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:seq]
         + w["embeddings.token_type_embeddings.weight"][0])  # fmt: skip
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])

    def linear(v: np.ndarray, name: str) -> Any:
        return v @ w[name + ".weight"].T + w[name + ".bias"]

    for layer in range(CONFIG.layers):
        p = f"encoder.layer.{layer}."
        q, k, v = (linear(x, p + "attention.self." + n).reshape(batch, seq, heads, d)
                   .transpose(0, 2, 1, 3) for n in ("query", "key", "value"))  # fmt: skip
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + (1 - mask[:, None, None, :]) * -1e4
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        a = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, -1)
        x = layer_norm(linear(a, p + "attention.output.dense") + x,
                       w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"])  # fmt: skip
        inner = linear(x, p + "intermediate.dense")
        inner = 0.5 * inner * (1 + np.vectorize(math.erf)(inner / math.sqrt(2)))
        x = layer_norm(linear(inner, p + "output.dense") + x, w[p + "output.LayerNorm.weight"],
                       w[p + "output.LayerNorm.bias"])  # fmt: skip
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def test_the_graph_matches_a_numpy_forward_pass_with_padding() -> None:
    rng = np.random.default_rng(0)
    weights = random_weights(rng)
    session = ort.InferenceSession(build_bert(weights, CONFIG).SerializeToString(),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    ids = rng.integers(1, 50, size=(3, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    want = reference({k: v.astype(np.float64) for k, v in weights.items()}, ids, mask)
    np.testing.assert_allclose(got, want, atol=2e-5)
    # a padded row embeds exactly as the same tokens alone
    alone = session.run(None, {"input_ids": ids[1:2, :6], "attention_mask": mask[1:2, :6]})[0]
    np.testing.assert_allclose(alone[0], got[1], atol=1e-5)
