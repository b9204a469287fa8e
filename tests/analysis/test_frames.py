"""Per-second frames: throughput, error counts and latency percentiles over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rundirs import T0, make_requests, write_run

from scalelab import hdr
from scalelab.analysis import load_run, per_second
from scalelab.analysis.percentiles import percentile_column


def test_per_second_counts_and_rates(tmp_path: Path) -> None:
    req = make_requests(rate=500, duration_s=10, seed=2, error_rate=0.1, mean_ms=3.0)
    run = load_run(write_run(tmp_path / "r", req).path)
    ps = per_second(run)
    assert ps.attrs["t0"] == pytest.approx(T0)
    assert list(ps["t"][:3]) == [0.0, 1.0, 2.0]
    assert ps["requests"].sum() == len(req)
    assert ps["errors"].sum() == int((~req["ok"]).sum())
    full = ps.iloc[:-1]  # the last bin holds only the stragglers
    assert full["throughput_rps"].mean() == pytest.approx(500, rel=0.05)
    assert full["error_rate"].mean() == pytest.approx(0.1, abs=0.03)
    assert full["p50_ms"].median() == pytest.approx(3.0 * np.log(2), rel=0.15)
    assert (ps["p99_ms"].dropna() >= ps["p50_ms"].dropna()).all()
    half = per_second(run, bin_s=0.5)
    assert half["requests"].sum() == len(req)
    assert half["throughput_rps"].iloc[:-1].mean() == pytest.approx(500, rel=0.05)


def test_a_stall_shows_as_an_empty_second_then_a_burst(tmp_path: Path) -> None:
    rate, stall = 200, (5.0, 6.0)
    req = make_requests(
        rate=rate, duration_s=10, seed=4, latency="fixed", mean_ms=2.0, poisson=False
    )
    rel = req["intended_start"] - T0
    held = (rel >= stall[0]) & (rel < stall[1])
    # open loop: requests that arrive during the stall are answered when it ends
    extra_us = ((stall[1] - rel[held]) * 1e6).round().astype("int64")
    req.loc[held, "latency_us"] += extra_us
    req.loc[held, "latency_intended_us"] += extra_us
    run = load_run(write_run(tmp_path / "r", req).path)
    ps = per_second(run)
    assert ps.loc[5, "requests"] == 0
    assert np.isnan(ps.loc[5, "p99_ms"])
    assert ps.loc[6, "requests"] == pytest.approx(2 * rate, abs=2)
    by_arrival = per_second(run, by="intended_start")
    assert by_arrival.loc[5, "requests"] == rate
    assert by_arrival.loc[5, "max_ms"] == pytest.approx(1000.0, rel=0.01)
    assert by_arrival.loc[4, "max_ms"] == pytest.approx(2.0, rel=0.01)


def test_actual_against_intended_latency(tmp_path: Path) -> None:
    req = make_requests(rate=100, duration_s=3, seed=1, latency="fixed", mean_ms=4.0)
    req["latency_intended_us"] = req["latency_us"] + 6000  # every request sent 6 ms late
    run = load_run(write_run(tmp_path / "r", req).path)
    assert per_second(run)["p50_ms"].iloc[0] == pytest.approx(10.0, rel=1e-3)  # HDR: 3 digits
    assert per_second(run, latency="actual")["p50_ms"].iloc[0] == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(ValueError, match="latency='bogus'"):
        per_second(run, latency="bogus")


def test_percentiles_per_bin_follow_the_hdr_rule_of_summary_json(tmp_path: Path) -> None:
    """Each bin's percentiles are those of an HdrHistogram of its latencies, as everywhere
    else in scalelab, not an interpolation between two recorded latencies."""
    rng = np.random.default_rng(12)
    lat = np.concatenate([rng.integers(1, 3_000, 40), rng.integers(1, 4_000_000_000, 40)])
    req = make_requests(rate=20, duration_s=4, seed=3, poisson=False, latencies_us=lat)
    run = load_run(write_run(tmp_path / "r", req).path)
    points = (1, 25, 50, 90, 99, 99.9, 100)
    ps = per_second(run, bin_s=100.0, by="intended_start", points=points)
    assert len(ps) == 1
    hist = hdr.new_histogram()
    for v in req["latency_intended_us"]:
        hist.record_value(hdr.clamp_us(int(v)))
    for q in points:
        assert ps.iloc[0][percentile_column(q)] == hist.get_value_at_percentile(q) / 1000, q
    assert ps.iloc[0]["max_ms"] == hist.get_max_value() / 1000
    by_second = per_second(run, by="intended_start")
    for i, row in by_second.iterrows():
        in_bin = req["intended_start"].between(T0 + i, T0 + i + 1, inclusive="left")
        h = hdr.new_histogram()
        for v in req.loc[in_bin, "latency_intended_us"]:
            h.record_value(hdr.clamp_us(int(v)))
        assert row["p90_ms"] == h.get_value_at_percentile(90) / 1000


def test_run_without_requests_gives_an_empty_frame(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", make_requests(rate=10, duration_s=1), files=()).path)
    ps = per_second(run)
    assert isinstance(ps, pd.DataFrame) and ps.empty and "throughput_rps" in ps.columns


def test_per_second_is_fast_on_a_large_run(tmp_path: Path) -> None:
    import time

    req = make_requests(rate=10_000, duration_s=30, seed=9)  # ~300k requests
    run = load_run(write_run(tmp_path / "r", req, files=("requests", "events")).path)
    _ = run.requests
    began = time.perf_counter()
    ps = per_second(run)
    assert time.perf_counter() - began < 5.0  # vectorised: well under a second here
    assert ps["requests"].sum() == len(req)
