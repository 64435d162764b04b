"""`type: prompt_injection`: heuristics plus classifiers over sentence embeddings and words.

Features of a text: all-MiniLM-L6-v2 embeddings (int8 dynamically quantized for speed)
of its sentences (pieces of at most 64 word pieces; of a long text, the first and last
64 word pieces), averaged and max-pooled, so one injected sentence in a benign document
still stands out; and a dozen attack-phrasing patterns. A small ensemble of
one-hidden-layer networks over those, averaged with a logistic regression over the
text's hashed words and word pairs, gives the probability; both are trained by
`scripts/train_injection_head.py` (shipped in `gateway/data/injection_head.npz`, the
threshold and the figures reached on held-out data in `injection_head.json`). System
and developer messages are not judged.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import re
import threading
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.guardrails.scanners import Finding, PolicyGuardrail
from gateway.local.engine import session_options
from gateway.local.int8 import quantized
from gateway.local.quant import F32
from gateway.policy.models import PromptInjectionGuardrail

SEGMENT = 64  # word pieces per sentence piece at most
BUDGET = 64  # word pieces judged from each end of a long text
SENTENCE_END = re.compile(r"(?<=[.!?:;\n])\s+")
PATTERNS = [  # phrasing of attacks; each a feature the head weighs
    r"\b(?:ignore|disregard|forget|override|bypass|skip)\b.{0,40}?\b(?:previous|prior|above|"
    r"earlier|preceding|all|any|your|the|these|those|initial|original)\b.{0,30}?\b(?:"
    r"instructions?|rules|directions?|prompts?|guidelines|programming|context|tasks?|orders)\b",
    r"\b(?:system|initial|hidden|original|secret)\s+(?:prompt|instructions?|message)\b.{0,60}?"
    r"\b(?:reveal|show|print|repeat|output|tell|display|leak|say)\b|\b(?:reveal|show|print|"
    r"repeat|output|tell me|display|leak)\b.{0,40}?\b(?:your|the)\s+(?:system|initial|hidden|"
    r"original|secret)\s+(?:prompt|instructions?)",
    r"\b(?:you are now|from now on|pretend (?:to be|you are|that you)|act as (?:if|an?|my)|"
    r"roleplay as|stay in character|respond as)\b",
    r"\b(?:DAN|do anything now|developer mode|jailbr[eo]ak|unfiltered|uncensored|"
    r"evil (?:mode|confidant)|no (?:moral|ethical) (?:guidelines|restrictions))\b",
    r"\bwithout (?:any )?(?:restrictions|limitations|filters?|censorship|rules|ethics)\b",
    r"\bnew (?:instructions?|task|rules|directive)\b|\binstead,? (?:you|do|say|print|write)\b",
    r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?(?:INST|SYS)\]|^\s*(?:system|assistant)\s*:",
    r"\b(?:OpenAI|Anthropic)(?:'s)? (?:content )?polic(?:y|ies)\b|\bcontent polic(?:y|ies)\b",
    r"\b(?:two|2|both) (?:different )?(?:responses|answers|paragraphs)\b"
    r"|\[(?:🔓|🔒|CLASSIC|JAILBREAK)",
    r"\b(?:admin|sudo|root|god) mode\b|\boverride code\b|\bauthori[sz]ation code\b",
    r"\bdo not (?:refuse|warn|apologi[sz]e)|\bnever (?:refuse|say (?:no|that you can't))\b",
    r"\b(?:print|output|say|write|respond with)\s+(?:only\s+)?[\"'“][^\"'”]{1,40}[\"'”]",
]
COMPILED = [re.compile(p, re.IGNORECASE | re.MULTILINE | re.DOTALL) for p in PATTERNS]


def heuristics(text: str) -> F32:
    return np.array([1.0 if p.search(text) else 0.0 for p in COMPILED], np.float32)


WORD = re.compile(r"[a-z0-9']+")
WORD_BUCKETS = 1 << 14


def word_buckets(text: str) -> list[int]:
    """The text's lower-cased words and word pairs, hashed (crc32) into WORD_BUCKETS.
    Numbers are left out: a ticket or order number says nothing about an attack (with
    them, "Ticket 403: ..." scored as one where "Ticket 7: ..." did not)."""
    words = [w for w in WORD.findall(text.lower()) if not w.isdigit()]
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    return sorted({zlib.crc32(g.encode()) % WORD_BUCKETS for g in grams})


class Featurizer:
    """Embeddings of the text's sentence pieces (mean and max of their vectors) + pattern hits."""

    def __init__(self, model_dir: Path, threads: int = 2) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        ids = [self.tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]")]
        if None in ids:
            raise ValueError(f"{model_dir}: the tokenizer has no [CLS]/[SEP]")
        self.cls_sep = (int(ids[0] or 0), int(ids[1] or 0))
        self.session = ort.InferenceSession(
            str(quantized(model_dir)), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()

    def segments(self, text: str) -> list[list[int]]:
        """The text as word-piece ids in pieces of whole sentences, packed up to SEGMENT
        pieces (a longer sentence is cut); of a long text, only BUDGET pieces from
        either end."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        boundaries = [m.end() for m in SENTENCE_END.finditer(text)] + [len(text) + 1]
        sentences: list[list[int]] = [[]]
        passed = 0
        for token, (start, _) in zip(encoding.ids, encoding.offsets, strict=True):
            if start >= boundaries[passed]:
                while start >= boundaries[passed]:
                    passed += 1
                sentences.append([])
            sentences[-1].append(token)
        pieces: list[list[int]] = [[]]
        for sentence in filter(None, sentences):
            if len(pieces[-1]) + len(sentence) > SEGMENT:
                pieces.append([])
            for token in sentence:
                if len(pieces[-1]) == SEGMENT:
                    pieces.append([])
                pieces[-1].append(token)
        return _ends([p for p in pieces if p] or [[]], BUDGET)

    def features(self, text: str) -> F32:
        cls, sep = self.cls_sep
        segments = [[cls, *piece, sep] for piece in self.segments(text)]
        ids = np.zeros((len(segments), max(len(s) for s in segments)), np.int64)
        mask = np.zeros_like(ids)
        for i, segment in enumerate(segments):
            ids[i, : len(segment)], mask[i, : len(segment)] = segment, 1
        with self._lock:
            vectors = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return np.concatenate([vectors.mean(0), vectors.max(0), heuristics(text)])


def _ends(pieces: list[list[int]], budget: int) -> list[list[int]]:
    """The first `budget` tokens and the last `budget` tokens, in their pieces."""
    if sum(map(len, pieces)) <= 2 * budget:
        return pieces
    head: list[list[int]] = []
    tail: list[list[int]] = []
    left = budget
    for piece in pieces:
        head.append(piece[:left])
        left -= len(head[-1])
        if not left:
            break
    left = budget
    for piece in reversed(pieces):
        tail.insert(0, piece[-left:])
        left -= len(tail[0])
        if not left:
            break
    return head + tail


def _sigmoid(z: Any) -> Any:
    return 0.5 + 0.5 * np.tanh(z / 2)  # without overflow


class Head:
    """Two views averaged: the network ensemble over the features (each member relu(x W1
    + b1) w2 + b2 through a sigmoid, input standardisation folded into W1 and b1; the
    members' mean), and a logistic regression over the hashed words and word pairs."""

    def __init__(self) -> None:
        data = resources.files("gateway.data")
        self.about: dict[str, Any] = json.loads(data.joinpath("injection_head.json").read_text())
        with data.joinpath("injection_head.npz").open("rb") as f, np.load(f) as arrays:
            self.w1, self.b1 = arrays["w1"], arrays["b1"]  # [M, F, H], [M, H]
            self.w2, self.b2 = arrays["w2"], arrays["b2"]  # [M, H], [M]
            self.words, self.words_bias = arrays["words"], float(arrays["words_bias"])  # [B]
        inputs = self.w1.shape[1]  # the members' first layers side by side: one matmul
        self._w1 = np.ascontiguousarray(self.w1.transpose(1, 0, 2).reshape(inputs, -1))
        self.threshold = float(self.about["threshold"])

    def probability(self, features: F32, buckets: list[int]) -> float:
        hidden = np.maximum(features @ self._w1 + self.b1.reshape(-1), 0.0)
        z = (hidden * self.w2.reshape(-1)).reshape(self.b2.shape[0], -1).sum(1) + self.b2
        lexical = _sigmoid(float(self.words[buckets].sum()) + self.words_bias)
        return float((np.mean(_sigmoid(z)) + lexical) / 2)


class PromptInjectionScanner(PolicyGuardrail):
    judges_instructions = False  # the application's own instructions are not attacks on it

    def __init__(self, name: str, config: PromptInjectionGuardrail) -> None:
        from gateway.local.registry import pull

        super().__init__(name, config)
        self.head = Head()
        self.threshold = config.threshold if config.threshold is not None else self.head.threshold
        self.featurizer = Featurizer(pull("all-minilm-l6-v2"), config.threads)
        # chats resend their history: each text is judged once (a cache per scanner, so a
        # policy reload lets the old scanner and its cache go)
        self.probability = functools.lru_cache(maxsize=4096)(self._probability)

    def _probability(self, text: str) -> float:
        return self.head.probability(self.featurizer.features(text), word_buckets(text))

    def check_request(self, body: dict[str, Any]) -> str | None:
        return None

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        if not text.strip():
            return []
        score = await asyncio.to_thread(self.probability, text)
        return [Finding(0, len(text), "PROMPT_INJECTION")] if score >= self.threshold else []

    def holdback(self, text: str) -> int:
        return 0  # input only (the policy refuses it on output)
