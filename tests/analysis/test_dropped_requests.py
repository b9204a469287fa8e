"""Requests the open loop dropped: one definition of "sent", the same figures everywhere.

An overloaded open loop drops the arrivals due while its cap on requests in
flight is reached; the recorder writes each as a row (method ``DROPPED``, no
latency). Were such rows read as requests, they would count as ~0 ms latencies
and make an overloaded run look fast. So every consumer of a run's requests
must give the figures ``summary.json`` gives, which counts only what was sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rundirs import make_requests, with_dropped, write_run

from scalelab.analysis import (
    Run,
    compare,
    group_percentiles,
    little_law,
    load_experiment,
    load_run,
    merged_histogram,
    per_second,
    percentile_table,
    requests_frame,
)
from scalelab.experiment.spec import SloSpec
from scalelab.experiment.summary import compute_summary
from scalelab.fileio import write_json
from scalelab.loadgen.records import DROPPED_METHOD

SECONDS = 4.0
WARMUP_S = 2.0  # when there is one: half the run, so that one 2 s bin is the measured window
POINTS = ("p50_ms", "p90_ms", "p99_ms")


def _overloaded_run(path: Path, warmup_s: float, seed: int) -> Run:
    """A run of 4 s at 300 arrivals/s, a third of them dropped, with the runner's summary.json."""
    req = make_requests(
        rate=300, duration_s=SECONDS, mean_ms=50.0, seed=seed, poisson=False, latency="exponential"
    )
    req = with_dropped(req, share=1 / 3, seed=seed)
    write_run(path, req, warmup_s=warmup_s)
    measure_from = float(req["intended_start"].min()) + warmup_s if warmup_s else None
    summary = compute_summary(
        path, run_id=path.name, measure_from=measure_from, slo=SloSpec(p99_ms=1e6)
    )
    write_json(path / "summary.json", summary)
    return load_run(path)


@pytest.mark.parametrize("warmup_s", [0.0, WARMUP_S], ids=["no-warmup", "warmup"])
def test_every_consumer_gives_the_percentiles_of_summary_json(
    tmp_path: Path, warmup_s: float
) -> None:
    run = _overloaded_run(tmp_path / "000-r0", warmup_s, seed=5)
    summary: dict[str, Any] = run.summary
    rows = run.requests
    in_window = rows["intended_start"] >= (run.measure_from or -np.inf)
    dropped = rows["method"] == DROPPED_METHOD
    assert dropped[in_window].mean() == pytest.approx(1 / 3, abs=0.05)

    # summary.json: the requests sent, and the dropped ones apart
    assert summary["requests"] == int((in_window & ~dropped).sum())
    assert summary["dropped"] == int((in_window & dropped).sum())
    assert summary["errors"] == int((in_window & ~dropped & ~rows["ok"]).sum()) == 0
    assert summary["p50_ms"] > 30  # exponential, mean 50 ms: dropped rows would pull it to ~0

    # the run's own frames
    assert len(run.measured_requests) == summary["requests"]
    frame = requests_frame(run)
    assert int((frame["measured"] & frame["sent"]).sum()) == summary["requests"]

    # histograms: the run's, merged, grouped
    table = percentile_table(run)
    merged = merged_histogram(run)
    assert merged.get_total_count() == summary["requests"]
    grouped = group_percentiles(load_experiment_of(run), by="run_id")
    for key in POINTS:
        assert table.loc[run.run_id, key] == summary[key], key
        assert grouped.loc[0, key] == summary[key], key

    # per second: one bin over the measured window (the second bin when there is a warm-up)
    bin_s = warmup_s or 10 * SECONDS
    ps = per_second(run, bin_s=bin_s, by="intended_start", points=(50, 90, 99))
    window = ps.iloc[1 if warmup_s else 0]
    assert window["requests"] == summary["requests"]
    assert window["dropped"] == summary["dropped"]
    for key in POINTS:
        assert window[key] == summary[key], key

    # A/B comparison, over requests (raw latencies: equal up to HDR's 3 digits) and repeats
    by_requests = compare(run, run, metric="p99", over="requests")
    assert by_requests.a == pytest.approx(summary["p99_ms"], rel=1e-3)
    by_repeats = compare([run, run], [run, run], metric="p99", over="repeats")
    assert by_repeats.a == summary["p99_ms"]

    # the steady-state check sees the same window
    assert summary["slo"]["p99_ms"]["overall"] == summary["p99_ms"]

    # Little's law: the arrival rate of requests sent
    assert little_law(run).arrival_rate_rps == pytest.approx(summary["throughput_rps"], rel=0.05)


def load_experiment_of(run: Run) -> Any:
    """The run as a one-run experiment (its folder's parent holds it)."""
    return load_experiment(run.path.parent)


def test_throughput_over_time_counts_what_was_sent(tmp_path: Path) -> None:
    run = _overloaded_run(tmp_path / "000-r0", 0.0, seed=8)
    ps = per_second(run)
    assert ps["requests"].sum() == run.summary["requests"]
    assert ps["dropped"].sum() == run.summary["dropped"]
    assert ps["errors"].sum() == run.summary["errors"]
    full = ps.iloc[1:-1]
    assert full["throughput_rps"].mean() == pytest.approx(200, rel=0.1)  # 300/s, a third dropped
