"""The semantic cache's threshold, measured: on labelled pairs of user messages
(`benchmarks/data/paraphrase_pairs.jsonl`, see its generator for where they come from),
the hit rate on pairs that should share an answer and the false-hit rate on pairs that
must not, per threshold, with and without the number/negation/name guard.

    python -m benchmarks.semantic_threshold
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.suite import write_figures
from gateway.cache.guard import same_meaning_markers
from gateway.cache.response_cache import Embedder
from gateway.stats import table

PAIRS = Path(__file__).parent / "data" / "paraphrase_pairs.jsonl"
HELD_OUT = Path(__file__).parent / "data" / "paraphrase_pairs_heldout.jsonl"
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98)


def measure(path: Path, embedder: Embedder) -> tuple[list[list[object]], list[list[object]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    a = embedder.embed_now([r["a"] for r in rows])
    b = embedder.embed_now([r["b"] for r in rows])
    similarity = np.sum(a * b, axis=1)
    guard = [same_meaning_markers(r["a"], r["b"]) for r in rows]
    positive = [i for i, r in enumerate(rows) if r["label"] == 1]
    negative = [i for i, r in enumerate(rows) if r["label"] == 0]
    summary: list[list[object]] = []
    for t in THRESHOLDS:
        hit = [i for i in positive if similarity[i] >= t]
        false = [i for i in negative if similarity[i] >= t]
        summary.append([
            t, round(len(hit) / len(positive), 3), round(len(false) / len(negative), 3),
            round(sum(guard[i] for i in hit) / len(positive), 3),
            round(sum(guard[i] for i in false) / len(negative), 3),
        ])  # fmt: skip
    kinds: dict[str, list[int]] = defaultdict(list)
    for i in negative:
        kinds[rows[i]["kind"]].append(i)
    per_kind: list[list[object]] = []
    for kind, items in sorted(kinds.items()):
        sims = similarity[items]
        per_kind.append([kind, len(items), round(float(np.median(sims)), 3),
                         round(float(sims.max()), 3),
                         sum(bool(guard[i]) for i in items)])  # fmt: skip
    return summary, per_kind


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    embedder = Embedder()
    lines: list[str] = []
    for path, role in ((PAIRS, "tuned on"), (HELD_OUT, "held out")):
        summary, per_kind = measure(path, embedder)
        lines += [f"{path.name} ({role}): hit rate on pairs that should share, false-hit "
                  "rate on pairs that must not (embedding alone; with the guard)",
                  table(["threshold", "hit_rate", "false_hit_rate", "hit_rate_guarded",
                         "false_hit_rate_guarded"], summary), "",
                  table(["negative kind", "pairs", "median_similarity", "max_similarity",
                         "guard_passes"], per_kind), ""]  # fmt: skip
    print("\n".join(lines))
    write_figures(Path(__file__).with_name("semantic_threshold.txt"),
                  "python -m benchmarks.semantic_threshold", lines)  # fmt: skip


if __name__ == "__main__":
    main()
