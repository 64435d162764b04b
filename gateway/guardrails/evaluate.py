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
        """A figure whose denominator is 0 (precision with nothing flagged, recall with
        nothing to find, FPR without negatives) is undefined: shown as n/a, not 0."""
        precision = ratio(self.tp, self.tp + self.fp)
        recall = ratio(self.tp, self.tp + self.fn)
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        fpr = ratio(self.flagged_negatives, self.negatives)
        lat = sorted(self.latencies)
        p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))] if lat else None
        p50 = statistics.median(lat) if lat else None
        figures = (precision, recall, f1, fpr, p50, p95)
        return [name, *("n/a" if x is None else f"{x:.3f}" for x in figures), str(len(lat))]


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class DatasetError(Exception):
    """A dataset line that is not a labelled row: its file, line and what is wrong."""


HEADER = ["guardrail", "precision", "recall", "f1", "fpr", "p50_ms", "p95_ms", "rows"]


def load(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().split("\n")  # not splitlines(): texts may hold U+2028
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise DatasetError(f'{path}:{number}: expected an object with a "text" string')
        if "spans" in row and not valid_spans(row["spans"]):
            raise DatasetError(
                f'{path}:{number}: "spans" must be a list of {{"start", "end", "entity_type"}}'
            )
        rows.append(row)
    return rows


def valid_spans(spans: Any) -> bool:
    return isinstance(spans, list) and all(
        isinstance(s, dict) and isinstance(s.get("start"), int) and isinstance(s.get("end"), int)
        and isinstance(s.get("entity_type"), str) for s in spans
    )  # fmt: skip


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
