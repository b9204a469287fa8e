"""Little's law on a synthetic run, and Erlang C against textbook values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rundirs import make_requests, write_run

from scalelab.analysis import erlang_c, little_law, load_run, mmc_prediction
from scalelab.errors import ScaleLabError


def test_mm1_matches_the_closed_form() -> None:
    lam, mu = 80.0, 100.0
    q = erlang_c(lam, mu, 1)
    rho = lam / mu
    assert q.utilization == pytest.approx(rho)
    assert q.p_wait == pytest.approx(rho)  # M/M/1: an arrival waits with probability ρ
    assert q.mean_wait_s == pytest.approx(rho / (mu - lam))
    assert q.mean_response_s == pytest.approx(1.0 / (mu - lam))
    assert q.mean_in_system == pytest.approx(rho / (1 - rho))
    assert q.mean_queue_length == pytest.approx(rho**2 / (1 - rho))


def test_mmc_textbook_values() -> None:
    # M/M/2 at ρ = 0.5: P(wait) = 2ρ²/(1+ρ) = 1/3, Wq = C/(cμ − λ)
    two = erlang_c(1.0, 1.0, 2)
    assert two.p_wait == pytest.approx(1 / 3)
    assert two.mean_wait_s == pytest.approx(1 / 3)
    # three servers, 2 Erlangs offered: C(3, 2) = 4/9
    three = erlang_c(2.0, 1.0, 3)
    assert three.p_wait == pytest.approx(4 / 9)
    assert three.mean_wait_s == pytest.approx((4 / 9) / (3 - 2))
    # many servers stay finite and sensible (no factorial overflow)
    big = erlang_c(950.0, 1.0, 1000)
    assert 0.0 < big.p_wait < 0.5 and big.stable


def test_unstable_and_invalid_queues() -> None:
    q = erlang_c(120.0, 100.0, 1)
    assert not q.stable and math.isinf(q.mean_wait_s) and q.p_wait == 1.0
    with pytest.raises(ScaleLabError, match="servers=0"):
        erlang_c(1.0, 1.0, 0)
    with pytest.raises(ScaleLabError, match="service_rate=0"):
        erlang_c(1.0, 0.0, 1)


def test_littles_law_on_a_synthetic_run(tmp_path: Path) -> None:
    # λ = 1000/s, W = 50 ms (exponential): L = 50 requests in flight
    req = make_requests(rate=1000, duration_s=30, mean_ms=50.0, seed=1)
    run = load_run(write_run(tmp_path / "r", req).path)
    ll = little_law(run, trim_s=1.0)
    assert ll.arrival_rate_rps == pytest.approx(1000, rel=0.03)
    assert ll.mean_latency_s == pytest.approx(0.05, rel=0.03)
    assert ll.predicted_in_flight == pytest.approx(50, rel=0.05)
    # the time-average of what the records show in flight agrees closely with λW
    assert ll.client_in_flight == pytest.approx(ll.predicted_in_flight, rel=0.03)
    # the service's gauge, sampled once a second, agrees within sampling noise
    assert 27 <= ll.samples <= 29
    assert ll.measured_in_flight == pytest.approx(ll.predicted_in_flight, rel=0.1)
    assert abs(ll.relative_difference) < 0.1


def test_littles_law_exposes_a_gauge_that_disagrees(tmp_path: Path) -> None:
    req = make_requests(rate=200, duration_s=10, mean_ms=20.0, seed=3)
    truth = write_run(tmp_path / "r", req)
    import pandas as pd

    metrics = pd.read_parquet(truth.path / "metrics.parquet")
    inflight = metrics["metric"] == "scalelab_in_flight"
    metrics.loc[inflight, "value"] = metrics.loc[inflight, "value"] * 3  # a wrong gauge
    metrics.to_parquet(truth.path / "metrics.parquet", index=False)
    ll = little_law(load_run(truth.path), trim_s=1.0)
    assert ll.relative_difference > 1.0


def test_little_law_without_metrics_gives_nan(tmp_path: Path) -> None:
    req = make_requests(rate=100, duration_s=3, seed=2)
    ll = little_law(load_run(write_run(tmp_path / "r", req, files=("requests",)).path))
    assert math.isnan(ll.measured_in_flight) and ll.samples == 0
    assert ll.predicted_in_flight > 0


def test_mmc_prediction_against_a_measured_mm1(tmp_path: Path) -> None:
    # simulate an M/M/1 queue (λ = 80/s, μ = 100/s) with Lindley's recursion
    import numpy as np

    rng = np.random.default_rng(8)
    n = 40_000
    gaps = rng.exponential(1 / 80, n)
    service = rng.exponential(1 / 100, n)
    arrival = np.cumsum(gaps)
    wait = np.zeros(n)
    for i in range(1, n):
        wait[i] = max(0.0, wait[i - 1] + service[i - 1] - gaps[i])
    lat_us = np.maximum(((wait + service) * 1e6).round(), 1).astype("int64")
    req = make_requests(rate=80, duration_s=n / 80, latencies_us=lat_us, poisson=False)
    req["intended_start"] = req["start"] = 1_780_000_000.0 + arrival[: len(req)]
    run = load_run(write_run(tmp_path / "r", req).path)
    cmp = mmc_prediction(run, servers=1, service_rate=100.0, arrival_rate=80.0)
    assert cmp.predicted_response_s == pytest.approx(0.05)
    assert cmp.measured_response_s == pytest.approx(0.05, rel=0.15)
    assert abs(cmp.relative_error) < 0.15
