"""Where a stream request's time goes inside `gateway serve`, warm and after idleness.

    python -m benchmarks.marks   # streams back to back, 10 ms apart, non-stream
                                 # -> prints, and writes benchmarks/marks.txt

The gateway runs in a child process with perf_counter marks wrapped around its stages
(uvicorn's `data_received`, our middleware, the pipeline's stages, the upstream write and
the upstream's first bytes, our first writes to the client); medians of the time between
consecutive marks are printed. In the 10 ms case each stream request comes after the
direct stream before it (~200 ms of the gateway idling), as in the suite's section 2.
The wrappers add a few microseconds a mark: compare cases with each other, not with the
suite's figures.
"""

from __future__ import annotations

import collections
import functools
import inspect
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.mock_upstream import free_port
from benchmarks.peers import Target
from benchmarks.suite import sequential, streaming, write_figures


class Marks:
    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.rows: list[dict[str, float]] = []

    def new_request(self) -> None:
        if self.current:
            self.rows.append(self.current)
        self.current = {"a_in": time.perf_counter()}

    def mark(self, name: str) -> None:
        self.current.setdefault(name, time.perf_counter())

    def summary(self) -> str:
        seen = collections.Counter(k for row in self.rows for k in row)
        keys = sorted(k for k, n in seen.items() if n >= len(self.rows) * 0.9)
        rows = [r for r in self.rows if all(k in r for k in keys)]
        rows = rows[len(rows) // 10 :]  # warm-up left out
        lines = [f"{len(rows)} requests"]
        for before, after in itertools.pairwise(keys):
            step = statistics.median(r[after] - r[before] for r in rows) * 1e6
            total = statistics.median(r[after] - r["a_in"] for r in rows) * 1e6
            lines.append(f"  {before:>22} -> {after:<22} {step:7.1f} us  (from a_in {total:7.1f})")
        return "\n".join(lines)


def wrap(owner: Any, name: str, marks: Marks, label: str, when: Callable[..., bool] | None = None) -> None:  # fmt: skip
    """Mark `label` on entering `owner.name` (sync or async), when `when(*args)` holds."""
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if when is None or when(*args):
                marks.mark(label)
            return await original(*args, **kwargs)

        setattr(owner, name, async_wrapper)
    else:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if when is None or when(*args):
                marks.mark(label)
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)


def serve_with_marks(out: Path, argv: list[str]) -> int:
    """The child: `gateway serve` with the marks in, writing the summary to `out` on exit."""
    import atexit
    import signal

    from uvicorn.protocols.http import httptools_impl as uv

    from gateway import middleware, pipeline, relay
    from gateway.providers import http1

    marks = Marks()
    original = uv.HttpToolsProtocol.data_received

    def data_received(self: Any, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            marks.new_request()
        original(self, data)

    uv.HttpToolsProtocol.data_received = data_received  # type: ignore[method-assign]
    wrap(middleware, "request_context", marks, "b_middleware")
    wrap(pipeline, "read_request", marks, "c_read_body")
    wrap(pipeline, "call_provider", marks, "d_call_provider")
    wrap(http1.Connection, "send", marks, "e_upstream_write")
    wrap(http1.Connection, "data_received", marks, "f_upstream_bytes")
    wrap(pipeline, "record", marks, "g_record")
    wrap(relay.SSEResponse, "__call__", marks, "h_sse_response")
    wrap(uv.RequestResponseCycle, "send", marks, "i_headers_out",
         lambda _self, message: message["type"] == "http.response.start")  # fmt: skip
    wrap(uv.RequestResponseCycle, "send", marks, "j_first_body_out",
         lambda _self, message: bool(message.get("body")))  # fmt: skip
    atexit.register(lambda: out.write_text(marks.summary() + "\n"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from gateway.cli import main

    return main(argv)


def case(interval_ms: float, stream: bool) -> str:
    mock_port = free_port()
    out = peers.PEERS / "marks.txt"
    with ExitStack() as stack:
        peers.PEERS.mkdir(exist_ok=True)
        command = peers.mock(mock_port, 20, interval_ms)
        stack.enter_context(peers.started("mock", command, mock_port, {}))
        direct = Target("direct", mock_port, subprocess.Popen(["true"]))
        policy = peers.PEERS / "marks.yaml"
        policy.write_text(peers.our_policy(mock_port))
        port = free_port()
        child = [sys.executable, "-m", "benchmarks.marks", "--child", str(out), "serve",
                 "--policy", str(policy), "--port", str(port)]  # fmt: skip
        ours = stack.enter_context(peers.started("ours", child, port, {}))
        if stream:
            streaming([direct, ours], 200)
        else:
            sequential([direct, ours], 2000)
    for _ in range(50):  # the child writes its summary as it exits
        if out.exists():
            break
        time.sleep(0.1)
    summary = out.read_text()
    out.unlink()
    return summary


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        sys.exit(serve_with_marks(Path(sys.argv[2]), sys.argv[3:]))
    lines: list[str] = []
    for title, interval, stream in (("streams, chunks back to back (warm)", 0.0, True),
                                    ("streams, chunks 10 ms apart (after ~200 ms idle)", 10.0, True),
                                    ("non-stream, back to back (warm)", 0.0, False)):  # fmt: skip
        lines += [f"{title}:", case(interval, stream), ""]
        print("\n".join(lines[-3:]), flush=True)
    write_figures(Path(__file__).with_name("marks.txt"), "python -m benchmarks.marks", lines)


if __name__ == "__main__":
    main()
