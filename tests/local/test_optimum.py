"""A drop-in export in optimum's layout: the same logits as the reference, batched
decoding of unequal sequences, and the whole chat path through the scheduler."""

import asyncio
from pathlib import Path

import numpy as np
import pytest

from gateway.local.llama_graph import LlamaWeights
from gateway.local.loaded import ChatModel
from gateway.local.optimum import OptimumEngine
from gateway.local.scheduler import Delta, Finished, Sampling, Sequence
from tests.local.optimum_export import write_optimum_model
from tests.local.reference import forward
from tests.local.tiny import tiny_config


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LlamaWeights]:
    weights = LlamaWeights.random(tiny_config(context=128), seed=9)
    directory = tmp_path_factory.mktemp("optimum")
    write_optimum_model(directory, weights)
    return directory, weights


def test_prompt_and_batched_decoding_match_the_reference(
    export: tuple[Path, LlamaWeights],
) -> None:
    directory, weights = export
    engine = OptimumEngine(directory, slots=3, threads=1, context=128)
    a, b = [5, 6, 7, 8, 9], [40, 41]
    np.testing.assert_allclose(engine.prefill(0, a), forward(weights, a)[-1], atol=1e-4)
    engine.prefill(1, b)
    out = engine.decode([10, 42], [len(a), len(b)])
    np.testing.assert_allclose(out[0], forward(weights, [*a, 10])[-1], atol=1e-4)
    np.testing.assert_allclose(out[1], forward(weights, [*b, 42])[-1], atol=1e-4)
    engine.move(1, 0, len(b) + 1)  # a leaves; b keeps decoding from row 0
    out = engine.decode([43], [len(b) + 1])
    np.testing.assert_allclose(out[0], forward(weights, [*b, 42, 43])[-1], atol=1e-4)


async def test_chat_through_the_scheduler(export: tuple[Path, LlamaWeights]) -> None:
    model = ChatModel(export[0], slots=2, threads=1, context=128)
    try:
        prompt = model.text.chat_prompt([{"role": "user", "content": "hi"}])
        seqs = [Sequence(prompt, Sampling(max_tokens=6, temperature=0), asyncio.get_running_loop())
                for _ in range(2)]  # fmt: skip
        for seq in seqs:
            model.scheduler.submit(seq)
        texts = []
        for seq in seqs:
            parts = []
            while not isinstance(event := await asyncio.wait_for(seq.events.get(), 10), Finished):
                assert isinstance(event, Delta)
                parts.append(event.text)
            assert event.completion_tokens == 6
            texts.append("".join(parts))
        assert texts[0] == texts[1]  # batched or not, greedy is greedy
    finally:
        model.close()
