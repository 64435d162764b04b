"""A plain numpy forward pass of the LLaMA decoder: the reference the graph must match."""

from __future__ import annotations

import numpy as np

from gateway.local.llama_graph import LlamaWeights, rotary_cache
from gateway.local.quant import F32


def _rms(x: F32, w: F32, eps: float) -> F32:
    normed: F32 = (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w).astype(np.float32)
    return normed


def _rotate(x: F32, cos: F32, sin: F32, interleaved: bool) -> F32:
    if interleaved:  # llama.cpp's layout: pairs (2i, 2i+1)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = x1 * cos - x2 * sin, x2 * cos + x1 * sin
        return out
    half = x.shape[-1] // 2  # Hugging Face's layout: pairs (i, i + D/2)
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward(weights: LlamaWeights, ids: list[int], interleaved: bool = False) -> F32:
    """Logits [len(ids), V] for one sequence, computed from the dequantized weights;
    `interleaved`: q/k rows in llama.cpp's rotary layout instead of Hugging Face's."""
    c = weights.config
    d, s = c.head_dim, len(ids)
    embed = weights.embed.dequantize()
    x = embed[ids]
    cos_all, sin_all = rotary_cache(c)
    cos, sin = cos_all[:s][None], sin_all[:s][None]
    mask = np.triu(np.full((s, s), -np.inf, np.float32), 1)
    for layer in weights.layers:
        h = _rms(x, layer.attn_norm, c.rms_eps)
        qkv = h @ layer.qkv.dequantize().T
        q = qkv[:, : c.heads * d].reshape(s, c.heads, d).transpose(1, 0, 2)
        k = qkv[:, c.heads * d : (c.heads + c.kv_heads) * d]
        v = qkv[:, (c.heads + c.kv_heads) * d :]
        k = k.reshape(s, c.kv_heads, d).transpose(1, 0, 2)
        v = v.reshape(s, c.kv_heads, d).transpose(1, 0, 2)
        q, k = _rotate(q, cos, sin, interleaved), _rotate(k, cos, sin, interleaved)
        group = c.heads // c.kv_heads
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + attn.transpose(1, 0, 2).reshape(s, -1) @ layer.o.dequantize().T
        h = _rms(x, layer.ffn_norm, c.rms_eps)
        gate_up = h @ layer.gate_up.dequantize().T
        gate, up = np.split(gate_up, 2, axis=-1)
        x = x + (gate / (1 + np.exp(-gate)) * up) @ layer.down.dequantize().T
    logits: F32 = _rms(x, weights.norm, c.rms_eps) @ embed.T
    return logits
