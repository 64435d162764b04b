"""Runs the decoder graph on onnxruntime with the KV cache in preallocated buffers.

Active sequences occupy rows 0..n-1 of each layer's cache buffer [slots, kv, L, D];
a decode step binds the first n rows (a contiguous view) as both past and present,
so GroupQueryAttention writes the new key/value in place and nothing is copied.
A finished sequence's row is refilled by moving the last row into it. Buffers start
short and double (up to the context length) when a sequence needs more room.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ortstate

from gateway.local.llama_graph import LlamaConfig
from gateway.local.quant import BLOCK, F32, Q8Matrix

RESCORE_MARGIN = 2.0  # logits this close to the best are recomputed exactly

INITIAL_LENGTH = 256
CPU = ["CPUExecutionProvider"]
# what onnxruntime raises when a run fails (its pybind classes derive from Exception)
RUN_ERRORS = (ortstate.Fail, ortstate.RuntimeException, ortstate.InvalidArgument, MemoryError)


class EngineFailure(Exception):
    """A model run failed: the requests in it fail, the scheduler keeps serving."""


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def with_accuracy(model: str | bytes, level: int) -> bytes:
    """The graph with every 4-bit MatMulNBits set to `level` (0: float32 activations,
    4: int8 activations)."""
    proto = onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    for node in proto.graph.node:
        if node.op_type == "MatMulNBits" and any(
            a.name == "bits" and a.i == 4 for a in node.attribute
        ):
            for attr in node.attribute:
                if attr.name == "accuracy_level":
                    attr.i = level
    serialized: bytes = proto.SerializeToString()
    return serialized


class LlamaEngine:
    def __init__(
        self,
        model: Path | bytes,
        config: LlamaConfig,
        head: Q8Matrix,
        slots: int,
        threads: int = 0,
        accuracy: tuple[int, int] | None = None,
    ) -> None:
        """`accuracy`: MatMulNBits accuracy levels for prompts and for decoding (None:
        as built). Two levels mean two sessions over the same cache buffers."""
        source = str(model) if isinstance(model, Path) else model
        options = session_options(threads)
        if accuracy is None:
            self.session = ort.InferenceSession(source, options, providers=CPU)
            self.decoder = self.session
        else:
            prompt, decode = accuracy
            graph = with_accuracy(source, prompt)
            self.session = ort.InferenceSession(graph, options, providers=CPU)
            if decode != prompt:
                graph = with_accuracy(graph, decode)
            self.decoder = (
                self.session
                if decode == prompt
                else ort.InferenceSession(graph, options, providers=CPU)
            )
        self.config = config
        self.head = head
        self.slots = slots
        self.length = min(INITIAL_LENGTH, config.context_length)
        self.keys = [self._buffer(self.length) for _ in range(config.layers)]
        self.values = [self._buffer(self.length) for _ in range(config.layers)]
        self._bindings: dict[
            tuple[int, int, int, int], tuple[ort.IOBinding, list[ort.OrtValue]]
        ] = {}

    @property
    def context_length(self) -> int:
        return self.config.context_length

    def _buffer(self, length: int) -> F32:
        c = self.config
        return np.zeros((self.slots, c.kv_heads, length, c.head_dim), np.float32)

    def reserve(self, length: int) -> None:
        """Make room for sequences of `length` tokens (at most the context length)."""
        if length <= self.length:
            return
        new = self.length
        while new < length:
            new *= 2
        new = min(new, self.config.context_length)
        for cache in (self.keys, self.values):
            for i, old in enumerate(cache):
                grown = self._buffer(new)
                grown[:, :, : self.length] = old
                cache[i] = grown
        self.length = new
        self._bindings.clear()

    def prefill(self, row: int, ids: list[int]) -> F32:
        """Run a new sequence's prompt into cache row `row`; the last position's logits."""
        self.reserve(len(ids))
        tokens = np.array([ids], np.int64)
        seqlens = np.array([len(ids) - 1], np.int32)
        logits: F32 = self._run(self.session, slice(row, row + 1), tokens, seqlens, len(ids))[0]
        return logits

    def decode(self, ids: list[int], lengths: list[int]) -> F32:
        """One token for each of rows 0..n-1; `lengths` are their cache lengths before
        this token. Returns logits [n, V]."""
        self.reserve(max(lengths) + 1)
        tokens = np.array(ids, np.int64).reshape(-1, 1)
        seqlens = np.array(lengths, np.int32)
        rows = slice(0, len(ids))
        return self._run(self.decoder, rows, tokens, seqlens, max(lengths) + 1)

    def _binding(self, session: ort.InferenceSession, rows: slice) -> ort.IOBinding:
        """The cache rows bound as past and present (kept while the buffers stay)."""
        key = (id(session), rows.start, rows.stop, self.length)
        cached = self._bindings.get(key)
        if cached is not None:
            return cached[0]
        binding = session.io_binding()
        binding.bind_output("logits")
        binding.bind_output("hidden")
        keep = []  # the OrtValues must outlive the binding
        for i in range(self.config.layers):
            for kind, cache in (("key", self.keys), ("value", self.values)):
                value = ort.OrtValue.ortvalue_from_numpy(cache[i][rows])
                keep.append(value)
                binding.bind_ortvalue_input(f"past_{kind}_{i}", value)
                binding.bind_ortvalue_output(f"present_{kind}_{i}", value)
        self._bindings[key] = (binding, keep)
        return binding

    def _run(
        self,
        session: ort.InferenceSession,
        rows: slice,
        tokens: npt.NDArray[np.int64],
        seqlens: npt.NDArray[np.int32],
        total: int,
    ) -> F32:
        binding = self._binding(session, rows)
        binding.bind_cpu_input("input_ids", tokens)
        binding.bind_cpu_input("seqlens_k", seqlens)
        binding.bind_cpu_input("total_sequence_length", np.array(total, np.int32))
        try:
            session.run_with_iobinding(binding)
        except RUN_ERRORS as exc:
            raise EngineFailure(str(exc)) from exc
        outputs = binding.get_outputs()  # not copy_outputs_to_cpu: that copies the caches
        logits, hidden = outputs[0].numpy(), outputs[1].numpy()
        return self._rescore(logits, hidden)

    def _rescore(self, logits: F32, hidden: F32) -> F32:
        """Recompute in float32, from the Q8 head, the logits of every token within
        RESCORE_MARGIN of the best: the graph's int8-activation head is fast but its
        ~0.5% error could swap near-tied tokens."""
        _, k = self.head.shape
        threshold = logits.max(axis=-1, keepdims=True) - RESCORE_MARGIN
        rows, cols = np.nonzero(logits >= threshold)
        codes = self.head.codes[cols].reshape(len(cols), k // BLOCK, BLOCK)
        weights = (codes.astype(np.float32) - 128) * self.head.scales[cols][..., None]
        logits[rows, cols] = np.einsum("ck,ck->c", weights.reshape(len(cols), k), hidden[rows])
        return logits

    def move(self, source: int, target: int, length: int) -> None:
        """Copy a sequence's cache from row `source` to row `target`."""
        for cache in (self.keys, self.values):
            for buffer in cache:
                buffer[target, :, :length] = buffer[source, :, :length]
