"""Helpers the hidden parts share: figures recomputed from a run's own records."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
from collections.abc import Coroutine, Iterable
from typing import Any

from scalelab.analysis.load import Run
from scalelab.experiment.summary import compute_summary


def figures(run: Run) -> dict[str, Any]:
    """The run's summary figures, recomputed from its requests and histograms.

    The grader reads a run's records rather than the summary.json written
    beside them, with the same definitions the runner used.
    """
    cache = run.__dict__.setdefault("_recomputed", {})
    if not cache:
        cache.update(compute_summary(run.path, measure_from=run.measure_from))
    return cache


def throughput(run: Run) -> float:
    """Requests per second of the run's measured time."""
    value = figures(run).get("throughput_rps")
    return float(value) if value is not None else math.nan


def mean_throughput(runs: Iterable[Run]) -> float:
    """The mean throughput of runs (requests/s)."""
    values = [throughput(r) for r in runs]
    return sum(values) / len(values) if values else math.nan


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion, also from a Jupyter kernel, whose event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
