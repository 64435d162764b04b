"""`type: prompt_injection`: heuristics plus a classifier over sentence embeddings.

Features of a text: all-MiniLM-L6-v2 embeddings (int8 dynamically quantized for speed)
of its first and last 128 word pieces, and a dozen attack-phrasing patterns; a
logistic head trained by `scripts/train_injection_head.py` (shipped in
`gateway/data/injection_head.json`, with the figures it reached on held-out data)
turns them into a probability. System and developer messages are not judged.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.guardrails.scanners import Finding, PolicyGuardrail
from gateway.local.engine import session_options
from gateway.local.quant import F32
from gateway.policy.models import PromptInjectionGuardrail

WINDOW = 128  # word pieces per window: the head and the tail of a long text
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


class Featurizer:
    """Embeddings (head and tail windows, mean and max of their vectors) + pattern hits."""

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

    def windows(self, text: str) -> list[list[int]]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        cls, sep = self.cls_sep
        parts = [ids[:WINDOW]] if len(ids) <= WINDOW else [ids[:WINDOW], ids[-WINDOW:]]
        return [[cls, *part, sep] for part in parts]

    def features(self, text: str) -> F32:
        windows = self.windows(text)
        width = max(len(w) for w in windows)
        ids = np.zeros((len(windows), width), np.int64)
        mask = np.zeros_like(ids)
        for i, w in enumerate(windows):
            ids[i, : len(w)], mask[i, : len(w)] = w, 1
        with self._lock:
            vectors = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return np.concatenate([vectors.mean(0), vectors.max(0), heuristics(text)])


def quantized(model_dir: Path) -> Path:
    """The encoder with int8 weights and activations (onnxruntime's dynamic quantization:
    ~2x faster here); made once, next to the float model."""
    target = model_dir / "model.int8.onnx"
    if not target.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = model_dir / f".model.int8.{threading.get_ident()}.onnx"
        quantize_dynamic(model_dir / "model.onnx", tmp, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": 1})  # fmt: skip
        tmp.replace(target)
    return target


def load_head() -> dict[str, Any]:
    text = resources.files("gateway.data").joinpath("injection_head.json").read_text("utf-8")
    head: dict[str, Any] = json.loads(text)
    return head


class PromptInjectionScanner(PolicyGuardrail):
    def __init__(self, name: str, config: PromptInjectionGuardrail) -> None:
        from gateway.local.registry import pull

        super().__init__(name, config)
        head = load_head()
        self.weights = np.array(head["weights"], np.float32)
        self.bias = float(head["bias"])
        self.threshold = config.threshold if config.threshold is not None else head["threshold"]
        self.featurizer = Featurizer(pull("all-minilm-l6-v2"), config.threads)

    def probability(self, text: str) -> float:
        z = float(self.featurizer.features(text) @ self.weights) + self.bias
        return float(1.0 / (1.0 + np.exp(-z)))

    def check_request(self, body: dict[str, Any]) -> str | None:
        return None

    async def scan(self, text: str, request: dict[str, Any] | None = None) -> list[Finding]:
        if not text.strip() or _is_instruction(text, request):
            return []
        score = await asyncio.to_thread(self.probability, text)
        return [Finding(0, len(text), "PROMPT_INJECTION")] if score >= self.threshold else []

    def holdback(self, text: str) -> int:
        return 0  # input only (the policy refuses it on output)


def _is_instruction(text: str, request: dict[str, Any] | None) -> bool:
    """The application's own system/developer messages are not attacks on it."""
    return any(
        isinstance(m, dict)
        and m.get("role") in ("system", "developer")
        and m.get("content") == text
        for m in (request or {}).get("messages") or ()
    )
