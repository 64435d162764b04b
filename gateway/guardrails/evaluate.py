"""`gateway guardrails eval DATASET.jsonl`: how well each guardrail scanner does on
labelled data, and how fast.

Dataset lines are either `{"text": ..., "label": ...}` (a label of benign, safe, negative,
0 or false is negative; anything else positive) or `{"text": ..., "spans": [{"start",
"end", "entity_type"}]}` (PII spans; only entity types the scanner reports are scored).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.guardrails import Guardrail
from gateway.guardrails.scanners import Finding

NEGATIVE = {"benign", "safe", "negative", "0", "false", "none"}


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    negatives: int = 0  # documents with nothing to find
    flagged_negatives: int = 0
    latencies: list[float] = field(default_factory=list)

    def row(self, name: str) -> list[str]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        fpr = self.flagged_negatives / self.negatives if self.negatives else 0.0
        lat = sorted(self.latencies)
        p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))] if lat else 0.0
        p50 = statistics.median(lat) if lat else 0.0
        figures = (precision, recall, f1, fpr, p50, p95)
        return [name, *(f"{x:.3f}" for x in figures), str(len(lat))]


HEADER = ["guardrail", "precision", "recall", "f1", "fpr", "p50_ms", "p95_ms", "rows"]


def load(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().split("\n")  # not splitlines(): texts may hold U+2028
    return [json.loads(line) for line in lines if line.strip()]


async def timed_scan(guardrail: Guardrail, text: str, score: Score) -> list[Finding]:
    started = time.perf_counter()
    findings = await guardrail.scan(text)
    score.latencies.append((time.perf_counter() - started) * 1000)
    return findings


async def evaluate(guardrail: Guardrail, rows: list[dict[str, Any]]) -> Score:
    """Precision and recall per document (labels) or per span (spans: overlapping, same
    entity type); the false-positive rate is per document with nothing to find."""
    score = Score()
    types = scored_types(guardrail)
    for row in rows:
        findings = await timed_scan(guardrail, row["text"], score)
        if "spans" in row:
            gold = [
                (s["start"], s["end"], s["entity_type"])
                for s in row["spans"]
                if s["entity_type"] in types
            ]
            positive = bool(gold)
        else:
            gold, positive = [], str(row.get("label", "")).lower() not in NEGATIVE
        if not positive:
            score.negatives += 1
            score.flagged_negatives += bool(findings)
        if "spans" not in row:
            score.tp += positive and bool(findings)
            score.fp += bool(findings) and not positive
            score.fn += positive and not findings
            continue
        matched: set[int] = set()
        for f in findings:
            hit = next(
                (i for i, (s, e, t) in enumerate(gold)
                 if t == f.entity and s < f.end and f.start < e and i not in matched),
                None,
            )  # fmt: skip
            if hit is None:
                score.fp += 1
            else:
                matched.add(hit)
                score.tp += 1
        score.fn += len(gold) - len(matched)
    return score


def scored_types(guardrail: Guardrail) -> set[str]:
    """The entity types a span dataset is scored on: those this scanner can report."""
    entities = getattr(getattr(guardrail, "config", None), "entities", None)
    if entities is not None:
        return set(entities)
    recognizers = getattr(guardrail, "recognizers", ())
    return {e for recognizer, _ in recognizers for e in recognizer.supported_entities}
