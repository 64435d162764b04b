"""Thompson allocation's view of the feedback: every `refresh_s` the arms' totals on
the experiment's metric are read from the request log (which every worker process, and
every replica sharing the file, writes), and each thompson allocator gets them. Reading
the log, not counting in memory, keeps replicas that share it in step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import duckdb

from gateway.prompts import ArmStats
from gateway.state import GatewayState
from gateway.telemetry.duckdb_sink import connect
from gateway.telemetry.schema import migrate

log = logging.getLogger("gateway.prompts")
IDLE_S = 10.0  # how often to look again while no experiment is a thompson one
SQL = """
SELECT r.arm, count(*), sum(f.value), sum(f.value * f.value)
FROM feedback f JOIN requests r USING (request_id)
WHERE r.experiment = ? AND f.metric = ? AND f.value IS NOT NULL AND r.arm IS NOT NULL
GROUP BY r.arm
"""


def read_arm_stats(
    path: Path, experiment: str, metric: str, wait_s: float = 1.0
) -> dict[str, ArmStats]:
    if not path.exists():
        return {}
    con = connect(path, wait_s=wait_s)
    try:
        migrate(con)
        found = con.execute(SQL, [experiment, metric]).fetchall()
    finally:
        con.close()
    return {str(arm): ArmStats(int(n), float(total), float(sq)) for arm, n, total, sq in found}


class ArmStatsRefresher:
    """Owned by the lifespan: started after the sinks, stopped before they close."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._stop: asyncio.Event | None = None
        self._failing = False

    def start(self) -> None:
        if self.state.request_log is not None:
            self._stop = asyncio.Event()
            self.state.tasks.spawn(self._run(self._stop), "experiment-stats")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait_s = await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)

    async def refresh(self) -> float:
        """Read every thompson experiment's totals once; returns when to look again."""
        assert self.state.request_log is not None
        path = self.state.request_log.path
        runtime = self.state.runtime
        thompson = [e for e in runtime.experiments.values() if e.config.allocation == "thompson"]
        for experiment in thompson:
            try:
                stats = await asyncio.to_thread(read_arm_stats, path, experiment.name,
                                                experiment.config.metric)  # fmt: skip
            except duckdb.Error as exc:  # held by another process: the shares stand
                if not self._failing:
                    log.warning("experiment feedback unreadable (%s); shares unchanged", exc)
                self._failing = True
                continue
            self._failing = False
            experiment.allocator.update(stats)
        return min((e.config.refresh_s for e in thompson), default=IDLE_S)
