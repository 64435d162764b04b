"""The decoder graph against a plain numpy forward pass: prompt, batched decoding of
sequences at different lengths, rows moved when a sequence leaves, cache growth."""

import numpy as np
import pytest

from gateway.local import engine as engine_module
from gateway.local.engine import RESCORE_MARGIN, LlamaEngine
from gateway.local.llama_graph import LlamaWeights, build_llama
from tests.local.reference import forward
from tests.local.tiny import tiny_config

TOL = 2e-4


def assert_logits_match(got: np.ndarray, ref: np.ndarray) -> None:
    """Candidates near the best are rescored exactly; the rest come from the
    int8-activation head and stay within 1% of the logits' scale."""
    top = np.nonzero(ref >= ref.max() - RESCORE_MARGIN / 2)[0]
    np.testing.assert_allclose(got[top], ref[top], atol=TOL, rtol=TOL)
    assert np.abs(got - ref).max() < 0.01 * np.abs(ref).max()


@pytest.fixture(scope="module")
def weights() -> LlamaWeights:
    return LlamaWeights.random(tiny_config(context=512), seed=3)


def make_engine(weights: LlamaWeights, slots: int = 4, accuracy: int = 0) -> LlamaEngine:
    model = build_llama(weights, accuracy, accuracy).SerializeToString()
    return LlamaEngine(model, weights.config, weights.embed, slots, threads=1)


def test_prompt_logits_match_the_reference(weights: LlamaWeights) -> None:
    ids = [5, 17, 200, 3, 99, 41]
    got = make_engine(weights).prefill(0, ids)
    assert_logits_match(got, forward(weights, ids)[-1])


def test_batched_decoding_of_unequal_sequences_matches_each_alone(weights: LlamaWeights) -> None:
    engine = make_engine(weights)
    a, b, c = [7, 8, 9, 10, 11], [100, 101], [42, 43, 44]
    for row, ids in enumerate((a, b, c)):
        engine.prefill(row, ids)
    nxt = [12, 102, 45]
    out = engine.decode(nxt, [len(a), len(b), len(c)])
    for row, ids in enumerate((a, b, c)):
        ref = forward(weights, [*ids, nxt[row]])[-1]
        assert_logits_match(out[row], ref)
    # sequence b leaves: c moves into its row and keeps decoding correctly
    engine.move(2, 1, len(c) + 1)
    out = engine.decode([13, 46], [len(a) + 1, len(c) + 1])
    assert_logits_match(out[0], forward(weights, [*a, 12, 13])[-1])
    assert_logits_match(out[1], forward(weights, [*c, 45, 46])[-1])


def test_cache_grows_past_its_initial_length(
    weights: LlamaWeights, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "INITIAL_LENGTH", 16)
    engine = make_engine(weights, slots=2)
    ids = list(range(3, 23))  # 20 tokens: past the 16 allocated
    engine.prefill(0, ids)
    assert engine.length == 32
    out = engine.decode([50], [len(ids)])
    assert_logits_match(out[0], forward(weights, [*ids, 50])[-1])


def test_fast_int8_activation_path_stays_close(weights: LlamaWeights) -> None:
    ids = [5, 17, 200, 3, 99, 41]
    ref = forward(weights, ids)[-1]
    got = make_engine(weights, accuracy=4).prefill(0, ids)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
