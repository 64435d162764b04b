"""Block-quantized weights in the layouts onnxruntime's `MatMulNBits` and
`GatherBlockQuantized` read, converted from GGML's Q4_1 / Q8_0 blocks without
requantizing (and, for tests and other sources, quantized from float32).

Q4_1 (GGML): 32 weights per block, fp16 scale `d`, fp16 minimum `m`, weight = d*q + m.
MatMulNBits computes (q - zero_point) * scale; its fast CPU path needs integer zero
points, which cannot express Q4_1's minimum exactly. So the graph uses the default
zero point (8) with scale d, and adds each block's offset (m + 8d) times the sum of
the block's activations: x.w = sum_b d_b x_b.(q_b - 8) + (m_b + 8 d_b) sum(x_b),
which is exact. (Float zero points are exact too, but onnxruntime 1.32 runs them
~50x slower.) GGML stores element j in the low nibble and j+16 in the high nibble of
byte j; MatMulNBits packs consecutive elements low-first, so nibbles are re-paired.
Q8_0 (GGML): 32 int8 weights per block and an fp16 scale; stored as uint8 codes q+128
with a uint8 zero point of 128 (8-bit MatMulNBits on CPU needs integer zero points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BLOCK = 32
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Q4Matrix:
    """An [N, K] weight: `codes` [N, K/32, 16] packed nibbles, `scales` and `offsets`
    [N, K/32]; weight = (code - 8) * scale + offset."""

    codes: U8
    scales: F32
    offsets: F32

    @property
    def shape(self) -> tuple[int, int]:
        n, blocks, _ = self.codes.shape
        return n, blocks * BLOCK

    @classmethod
    def from_ggml_q4_1(cls, raw: U8, n: int, k: int) -> Q4Matrix:
        blocks = np.ascontiguousarray(raw).reshape(n, k // BLOCK, 20)
        d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
        qs = blocks[..., 4:]
        codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # element order
        return cls.from_codes(codes, d, m)

    @classmethod
    def from_codes(cls, codes: U8, d: F32, m: F32) -> Q4Matrix:
        """From unpacked codes [N, blocks, 32] with weight = d*code + m."""
        packed = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
        return cls(packed, d.astype(np.float32), (m + 8 * d).astype(np.float32))

    @classmethod
    def quantize(cls, weight: F32) -> Q4Matrix:
        """Q4_1-style quantization of an [N, K] float matrix (used for random test models)."""
        n, k = weight.shape
        blocks = weight.reshape(n, k // BLOCK, BLOCK)
        lo, hi = blocks.min(axis=-1), blocks.max(axis=-1)
        d = ((hi - lo) / 15).astype(np.float16).astype(np.float32)
        m = lo.astype(np.float16).astype(np.float32)
        safe = np.where(d == 0, 1, d)
        codes = np.clip(np.rint((blocks - m[..., None]) / safe[..., None]), 0, 15)
        return cls.from_codes(codes.astype(np.uint8), d, m)

    def dequantize(self) -> F32:
        low, high = self.codes & 0x0F, self.codes >> 4
        codes = np.stack([low, high], axis=-1).reshape(*self.codes.shape[:2], BLOCK)
        values = (codes.astype(np.float32) - 8) * self.scales[..., None]
        return (values + self.offsets[..., None]).reshape(self.shape).astype(np.float32)

    def take_rows(self, order: npt.NDArray[np.intp]) -> Q4Matrix:
        return Q4Matrix(self.codes[order], self.scales[order], self.offsets[order])

    @staticmethod
    def stack(parts: list[Q4Matrix]) -> Q4Matrix:
        """Concatenate along N (fuses q/k/v or gate/up into one matmul)."""
        return Q4Matrix(
            np.concatenate([p.codes for p in parts]),
            np.concatenate([p.scales for p in parts]),
            np.concatenate([p.offsets for p in parts]),
        )


@dataclass(frozen=True)
class Q8Matrix:
    """An [N, K] weight: uint8 `codes` [N, K] (int8 + 128) and `scales` [N, K/32]."""

    codes: U8
    scales: F32

    @property
    def shape(self) -> tuple[int, int]:
        n, k = self.codes.shape
        return n, k

    @classmethod
    def from_ggml_q8_0(cls, raw: U8, n: int, k: int) -> Q8Matrix:
        blocks = np.ascontiguousarray(raw).reshape(n, k // BLOCK, 34)
        d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
        q = blocks[..., 2:].copy().view(np.int8)
        return cls((q.astype(np.int16) + 128).astype(np.uint8).reshape(n, k), d)

    @classmethod
    def quantize(cls, weight: F32) -> Q8Matrix:
        n, k = weight.shape
        blocks = weight.reshape(n, k // BLOCK, BLOCK)
        d = (np.abs(blocks).max(axis=-1) / 127).astype(np.float16).astype(np.float32)
        q = np.clip(np.rint(blocks / np.where(d == 0, 1, d)[..., None]), -127, 127)
        return cls((q + 128).astype(np.uint8).reshape(n, k), d)

    def dequantize(self) -> F32:
        n, k = self.shape
        q = self.codes.astype(np.float32).reshape(n, k // BLOCK, BLOCK) - 128
        return (q * self.scales[..., None]).reshape(n, k).astype(np.float32)
