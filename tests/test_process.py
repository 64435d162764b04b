"""Process-wide settings of `gateway serve`."""

import subprocess
import sys


def test_malloc_arenas_are_limited_for_the_process_and_its_children() -> None:
    code = (
        "import os; from gateway.process import limit_malloc_arenas as l; "
        "print(l(), os.environ['MALLOC_ARENA_MAX'], l())"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["True", "2", "False"]  # applied once; children inherit it
    env["MALLOC_ARENA_MAX"] = "4"  # an explicit setting wins
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["False", "4", "False"]
