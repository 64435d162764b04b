"""Continuous batching on a tiny random model: determinism, batching that changes
nothing, sampling, limits, stop sequences, UTF-8 across tokens, freed rows."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.local.engine import EngineFailure
from gateway.local.loaded import ChatModel
from gateway.local.scheduler import Delta, Failed, Finished, Sampling, Sequence
from gateway.local.text import StopFilter
from tests.local.tiny import write_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny")
    write_tiny_model(directory, seed=11)
    return directory


@pytest.fixture
def model(model_dir: Path) -> Iterator[ChatModel]:
    chat = ChatModel(model_dir, slots=4, threads=1, context=128)
    yield chat
    chat.close()


async def generate(model: ChatModel, prompt: str, sampling: Sampling) -> tuple[str, Finished]:
    seq = Sequence(model.text.encode(prompt), sampling, asyncio.get_running_loop())
    model.scheduler.submit(seq)
    parts = []
    while True:
        event = await asyncio.wait_for(seq.events.get(), 30)
        if isinstance(event, Delta):
            parts.append(event.text)
        elif isinstance(event, Finished):
            return "".join(parts), event
        else:
            raise AssertionError(event)


GREEDY = Sampling(max_tokens=24, temperature=0)


async def test_greedy_is_deterministic_and_batching_changes_nothing(model: ChatModel) -> None:
    alone = [await generate(model, p, GREEDY) for p in ("hello", "a longer prompt here", "x")]
    together = await asyncio.gather(
        *(generate(model, p, GREEDY) for p in ("hello", "a longer prompt here", "x"))
    )
    assert [text for text, _ in together] == [text for text, _ in alone]
    assert all(done.completion_tokens == 24 and done.reason == "length" for _, done in alone)
    assert alone[0][1].prompt_tokens == len("hello")


async def test_more_requests_than_rows_all_finish(model: ChatModel) -> None:
    results = await asyncio.gather(*(generate(model, f"p{i}", GREEDY) for i in range(9)))
    assert len(results) == 9 and all(done.completion_tokens == 24 for _, done in results)
    assert results[3][0] == (await generate(model, "p3", GREEDY))[0]


async def test_seeded_sampling_repeats_and_seeds_differ(model: ChatModel) -> None:
    def sampled(seed: int) -> Sampling:
        return Sampling(max_tokens=32, temperature=1.0, top_p=0.9, top_k=50, seed=seed)

    first = await generate(model, "hi", sampled(1))
    assert first == await generate(model, "hi", sampled(1))
    assert first[0] != (await generate(model, "hi", sampled(2)))[0]


async def test_stop_sequence_ends_the_answer_before_it(model: ChatModel) -> None:
    full, _ = await generate(model, "hello", Sampling(max_tokens=40, temperature=0))
    stop = full[10:13]
    text, done = await generate(model, "hello", Sampling(40, temperature=0, stop=(stop,)))
    assert done.reason == "stop" and text == full[: full.index(stop)]


async def test_context_limit_finishes_with_length(model: ChatModel) -> None:
    _text, done = await generate(model, "x" * 120, Sampling(max_tokens=100, temperature=0))
    assert done.reason == "length" and done.prompt_tokens + done.completion_tokens == 128


async def test_a_cancelled_sequence_frees_its_row(model_dir: Path) -> None:
    chat = ChatModel(model_dir, slots=1, threads=1, context=128)
    try:
        seq = Sequence([5, 6], Sampling(max_tokens=10_000, temperature=0),
                       asyncio.get_running_loop())  # fmt: skip
        chat.scheduler.submit(seq)
        assert isinstance(await asyncio.wait_for(seq.events.get(), 10), Delta | Finished)
        seq.cancelled = True  # what the provider does when the client goes away
        _, done = await generate(chat, "next", GREEDY)
        assert done.completion_tokens == 24
    finally:
        chat.close()


async def test_shutdown_ends_every_sequence_in_flight(model_dir: Path) -> None:
    chat = ChatModel(model_dir, slots=2, threads=1, context=128)
    seq = Sequence([5, 6], Sampling(max_tokens=10_000, temperature=0), asyncio.get_running_loop())
    chat.scheduler.submit(seq)
    await asyncio.wait_for(seq.events.get(), 10)
    await asyncio.to_thread(chat.close)
    events = []
    while not seq.events.empty():
        events.append(seq.events.get_nowait())
    # no request is left waiting: its stream ends, with an error if it was cut short
    assert isinstance(events[-1], Failed | Finished)
    assert not chat.scheduler.thread.is_alive()


def test_utf8_characters_split_across_tokens_come_out_whole(model_dir: Path) -> None:
    chat = ChatModel(model_dir, slots=1, threads=1, context=128)
    try:
        text = "naïve café — 世界 🙂 ok"
        ids = chat.text.encode(text)
        assert len(ids) == len(text.encode())  # one token per byte
        decoder = chat.text.decoder()
        pieces = [decoder.step(chat.text.tokenizer, i) for i in ids]
        assert "".join(p for p in pieces if p) == text
        assert all("\ufffd" not in p for p in pieces if p)
    finally:
        chat.close()


def test_stop_filter_holds_back_only_a_possible_prefix() -> None:
    f = StopFilter(["END", "\n\n"])
    assert f.feed("abc E") == "abc "
    assert f.feed("N") == ""
    assert f.feed("x") == "ENx"
    assert f.feed("\n") == ""
    assert f.feed("\nrest") == "" and f.stopped


async def test_a_failing_run_fails_its_requests_and_the_next_ones_still_work(
    model: ChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = model.scheduler.engine
    real = engine.decode

    def broken(ids: list[int], lengths: list[int]) -> object:
        monkeypatch.setattr(engine, "decode", real)  # fails once
        raise EngineFailure("onnxruntime: out of memory")

    monkeypatch.setattr(engine, "decode", broken)
    seq = Sequence([5, 6], GREEDY, asyncio.get_running_loop())
    model.scheduler.submit(seq)
    events = [await asyncio.wait_for(seq.events.get(), 10) for _ in range(2)]
    assert isinstance(events[-1], Failed) and "out of memory" in events[-1].message
    _, done = await generate(model, "after", GREEDY)
    assert done.completion_tokens == 24
