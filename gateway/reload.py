"""Hot reload: on a policy file change or SIGHUP, load and validate the new policy and
swap it in whole. A bad policy is logged and the old one keeps serving; requests in
flight finish on the runtime they started with, whose retired providers close after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

import watchfiles

from gateway.policy.loader import PolicyError, load_policy
from gateway.prompts.registry import PROMPTS_DIR
from gateway.providers.base import Provider
from gateway.runtime import Runtime
from gateway.state import GatewayState

log = logging.getLogger("gateway.policy")


class PolicyReloader:
    def __init__(self, state: GatewayState, path: str | None) -> None:
        self.state = state
        self.path = path
        self.generation = 0
        self._watcher: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, watch: bool) -> None:
        self.loop = loop = asyncio.get_running_loop()
        if self.path is None:
            return  # the packaged default policy never changes
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError):
            log.warning("SIGHUP reload is not available here")
        if watch:
            self._watcher = self.state.tasks.spawn(self._watch(Path(self.path)), "policy-watch")

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self.path is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    def reload(self, reason: str) -> bool:
        try:
            loaded = load_policy(self.path, lock=True)
        except PolicyError as exc:
            log.error(
                "policy reload rejected; the current policy keeps serving",
                extra={"fields": {"reason": reason, "errors": [str(i) for i in exc.issues]}},
            )
            return False
        old = self.state.runtime
        new = Runtime(loaded, reuse=old)
        self.state.runtime = new
        self.generation += 1
        retired = old.retired_by(new)
        old.retire(lambda: self._close_later(old, retired))
        log.info("policy reloaded", extra={"fields": {"reason": reason, "source": loaded.source}})
        return True

    def reload_from_thread(self, reason: str, timeout: float = 10.0) -> bool:
        """Reload on the event loop from another thread (tests, admin tooling)."""

        async def run() -> bool:
            return self.reload(reason)

        assert self.loop is not None, "the reloader has not started"
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def _close_later(self, runtime: Runtime, providers: list[Provider]) -> None:
        self.state.tasks.spawn(runtime.aclose(providers), "close-retired-runtime")

    async def _watch(self, path: Path) -> None:
        folder, _ = watch_target(path)
        relevant = watch_filter(path)
        async for _ in watchfiles.awatch(folder, watch_filter=relevant, debounce=200, step=50):
            self.reload("file change")


def watch_filter(path: Path) -> Callable[[object, str], bool]:
    """Which changes in the watched folder reload: the policy's YAML files (the one file,
    for a one-file policy) and those in `prompts/`. A request log, the lock file the load
    itself writes, editors' swap files change nothing."""
    folder, only = watch_target(path)
    prompts = folder / PROMPTS_DIR

    def relevant(_: object, changed: str) -> bool:
        file = Path(changed)
        if file.suffix not in (".yaml", ".yml"):
            return False
        if file.parent == prompts:
            return True
        return file == only if only is not None else file.parent == folder

    return relevant


def watch_target(path: Path) -> tuple[Path, Path | None]:
    """The folder to watch, and the one file in it that matters (None: all of them)."""
    resolved = path.resolve()
    return (resolved, None) if resolved.is_dir() else (resolved.parent, resolved)
