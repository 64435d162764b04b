"""Q4_1 / Q8_0 blocks from GGUF are carried over exactly, and MatMulNBits reads them so."""

import numpy as np
import onnxruntime as ort
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize
from onnx import TensorProto, helper

from gateway.local.llama_graph import OPSETS, _Builder
from gateway.local.quant import Q4Matrix, Q8Matrix

RNG = np.random.default_rng(7)


def test_q4_1_blocks_dequantize_exactly_like_gguf() -> None:
    w = RNG.standard_normal((48, 96)).astype(np.float32)
    raw = quantize(w, GGMLQuantizationType.Q4_1)
    expected = dequantize(raw, GGMLQuantizationType.Q4_1).reshape(48, 96)
    mine = Q4Matrix.from_ggml_q4_1(raw, 48, 96).dequantize()
    np.testing.assert_allclose(mine, expected, atol=1e-6)


def test_q8_0_blocks_dequantize_exactly_like_gguf() -> None:
    w = RNG.standard_normal((40, 64)).astype(np.float32)
    raw = quantize(w, GGMLQuantizationType.Q8_0)
    expected = dequantize(raw, GGMLQuantizationType.Q8_0).reshape(40, 64)
    np.testing.assert_allclose(Q8Matrix.from_ggml_q8_0(raw, 40, 64).dequantize(), expected)


def test_matmul_nbits_with_block_offsets_is_exact() -> None:
    w = Q4Matrix.quantize(RNG.standard_normal((72, 128)).astype(np.float32))
    b = _Builder()
    b.matmul4("x", w, "y", accuracy=0)
    graph = helper.make_graph(
        b.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 72])], b.initializers,
    )  # fmt: skip
    session = ort.InferenceSession(
        helper.make_model(graph, opset_imports=OPSETS).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    x = RNG.standard_normal((3, 128)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, x @ w.dequantize().T, rtol=1e-4, atol=1e-4)


def test_constant_block_survives() -> None:
    w = np.zeros((2, 32), np.float32)
    w[1] = 0.25
    np.testing.assert_allclose(Q4Matrix.quantize(w).dequantize(), w, atol=1e-3)
