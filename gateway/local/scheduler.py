"""Continuous batching for a local decoder, on one thread the provider owns.

Each step the thread admits waiting sequences (running their prompts into free cache
rows), then decodes one token for every active sequence in a single batched call.
Sequences leave when they finish or their client goes away, freeing the row at once.
Results reach the event loop through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from gateway.local.engine import EngineFailure
from gateway.local.quant import F32
from gateway.local.text import ChatText, StopFilter


class Engine(Protocol):
    slots: int

    @property
    def context_length(self) -> int: ...

    def prefill(self, row: int, ids: list[int]) -> F32: ...

    def decode(self, ids: list[int], lengths: list[int]) -> F32: ...

    def move(self, source: int, target: int, length: int) -> None: ...


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    message: str


Event = Delta | Finished | Failed


@dataclass
class Sequence:
    prompt: list[int]
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    generated: int = 0
    length: int = 0  # tokens in the cache
    last: int = 0  # the token to feed next

    def emit(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class _Active:
    """A sequence being decoded: its sampler, detokeniser and stop filter."""

    def __init__(self, seq: Sequence, text: ChatText) -> None:
        self.seq = seq
        self.rng = np.random.default_rng(seq.sampling.seed)
        self.decoder = text.decoder()
        self.stops = StopFilter(list(seq.sampling.stop))


def sample(logits: F32, s: Sampling, rng: np.random.Generator) -> int:
    if s.temperature <= 0 or s.top_k == 1:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / s.temperature
    order = np.argsort(scaled)[::-1]
    if s.top_k > 0:
        order = order[: s.top_k]
    probs = np.exp(scaled[order] - scaled[order[0]])
    probs /= probs.sum()
    if s.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(probs), s.top_p) + 1)
        order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
    return int(order[rng.choice(len(order), p=probs)])


class Scheduler:
    def __init__(self, engine: Engine, text: ChatText, eos: set[int]) -> None:
        self.engine = engine
        self.text = text
        self.eos = eos
        self.waiting: queue.Queue[Sequence | None] = queue.Queue()
        self.active: list[_Active] = []
        self.thread = threading.Thread(target=self._run, name="local-model", daemon=True)
        self.thread.start()

    def submit(self, seq: Sequence) -> None:
        self.waiting.put(seq)

    def close(self) -> None:
        self.waiting.put(None)
        self.thread.join()

    def _run(self) -> None:
        while True:
            if not self._admit():
                return
            if self.active:
                self._step()

    def _admit(self) -> bool:
        """Start waiting sequences while rows are free; block when nothing is active."""
        while len(self.active) < self.engine.slots:
            try:
                seq = self.waiting.get(block=not self.active)
            except queue.Empty:
                return True
            if seq is None:
                for active in self.active:
                    active.seq.emit(Failed("the local model is shutting down"))
                return False
            if not seq.cancelled:
                self._start(seq)
        return True

    def _start(self, seq: Sequence) -> None:
        active = _Active(seq, self.text)
        try:
            logits = self.engine.prefill(len(self.active), seq.prompt)
        except EngineFailure as exc:  # fails this request, not the thread
            seq.emit(Failed(f"local model failed: {exc}"))
            return
        seq.length = len(seq.prompt)
        self.active.append(active)
        self._advance(active, logits)
        self._sweep()

    def _step(self) -> None:
        seqs = [a.seq for a in self.active]
        try:
            logits = self.engine.decode([s.last for s in seqs], [s.length for s in seqs])
        except EngineFailure as exc:  # fail the batch's requests, keep serving new ones
            for seq in seqs:
                seq.emit(Failed(f"local model failed: {exc}"))
            self.active.clear()
            return
        for active, row in zip(self.active, logits, strict=True):
            active.seq.length += 1
            self._advance(active, row)
        self._sweep()

    def _advance(self, active: _Active, logits: F32) -> None:
        """Sample the next token, emit its text, decide whether the sequence is done."""
        seq = active.seq
        if seq.cancelled:
            return
        token = sample(logits, seq.sampling, active.rng)
        if token in self.eos:
            return self._finish(active, "stop")
        seq.generated += 1
        seq.last = token
        piece = active.decoder.step(self.text.tokenizer, token) or ""
        released = active.stops.feed(piece)
        if released:
            seq.emit(Delta(released))
        if active.stops.stopped:
            return self._finish(active, "stop", flush=False)
        full = seq.length + 1 >= self.engine.context_length
        if seq.generated >= seq.sampling.max_tokens or full:
            self._finish(active, "length")

    def _finish(self, active: _Active, reason: str, flush: bool = True) -> None:
        seq = active.seq
        rest = active.stops.flush() if flush else ""
        if rest:
            seq.emit(Delta(rest))
        seq.emit(Finished(reason, len(seq.prompt), seq.generated))
        seq.cancelled = True  # leaves at the next sweep

    def _sweep(self) -> None:
        """Drop finished or abandoned sequences, moving the last row into each gap."""
        row = 0
        while row < len(self.active):
            if not self.active[row].seq.cancelled:
                row += 1
                continue
            last = len(self.active) - 1
            if row != last:
                self.engine.move(last, row, self.active[last].seq.length)
                self.active[row] = self.active[last]
            self.active.pop()
