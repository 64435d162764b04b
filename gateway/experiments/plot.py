"""The report's PNG: each arm's metric, cumulative over time, with its 95% interval."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gateway.experiments import stats
from gateway.experiments.data import ExperimentData


def plot(data: ExperimentData, kind: str, title: str, out: Path, points: int = 60) -> None:
    """matplotlib (`pip install 'llm-gateway[report]'`); boolean and float metrics."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for arm, found in data.arms.items():
        if len(found.values) < 2:
            continue
        values = np.array(found.values)
        ends = np.unique(np.linspace(2, len(values), min(points, len(values) - 1)).astype(int))
        intervals = [stats.mean_interval(values[:end], kind) for end in ends]
        times = [found.times[end - 1] for end in ends]
        means = [i.mean for i in intervals if i is not None]
        low = [i.low for i in intervals if i is not None]
        high = [i.high for i in intervals if i is not None]
        (line,) = axes.plot(times, means, label=f"arm {arm} (n={len(values)})")
        axes.fill_between(times, low, high, alpha=0.2, color=line.get_color())
    axes.set_title(title)
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("cumulative mean, 95% interval")
    axes.legend(loc="best")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
