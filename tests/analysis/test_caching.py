"""Caching analysis: Che's approximation against a simulated LRU, and figures of known runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
from rundirs import make_requests, write_run

from scalelab.analysis import load_run
from scalelab.analysis.caching import (
    answer_counts,
    caching_table,
    che_characteristic_time,
    che_hit_ratio,
    che_zipf_hit_ratio,
    hit_ratio,
    hit_ratio_over_time,
    latency_by_answer,
    origin_calls,
    origin_calls_per_second,
    predicted_hit_ratio,
    simulate_lru,
    staleness,
    zipf_popularity,
)
from scalelab.loadgen.keys import Scan, Zipf


@pytest.mark.parametrize(("alpha", "capacity"), [(0.6, 50), (0.8, 100), (1.0, 100), (1.2, 20)])
def test_che_matches_a_simulated_lru_under_zipf(alpha: float, capacity: int) -> None:
    keys = Zipf(1000, seed=5, alpha=alpha).sample(120_000)
    simulated = simulate_lru(keys, capacity, warmup=20_000)
    assert che_zipf_hit_ratio(capacity, 1000, alpha) == pytest.approx(simulated, abs=0.01)


def test_characteristic_time_solves_the_occupancy_equation() -> None:
    p = zipf_popularity(500, 0.9)
    t = che_characteristic_time(p, 60)
    assert float(np.sum(1 - np.exp(-p * t))) == pytest.approx(60, abs=1e-6)
    assert che_hit_ratio(p, 60) == pytest.approx(float(np.sum(p * (1 - np.exp(-p * t)))))


def test_che_edge_cases() -> None:
    p = zipf_popularity(10, 1.0)
    assert che_hit_ratio(p, 10) == 1.0 and math.isinf(che_characteristic_time(p, 10))
    assert che_hit_ratio(p, 0) == 0.0
    assert che_hit_ratio([0.25] * 4, 2) == pytest.approx(0.5, abs=1e-9)  # uniform: C/N
    assert che_hit_ratio(p, 3) < che_hit_ratio(p, 6) < 1.0


def test_a_scan_longer_than_the_cache_defeats_lru() -> None:
    assert simulate_lru(Scan(150, seed=1).sample(3000), 100) == 0.0
    assert simulate_lru(Scan(50, seed=1).sample(3000), 100) == pytest.approx(1 - 50 / 3000)


def _caching_run(tmp_path: Path) -> Path:
    req = make_requests(rate=100.0, duration_s=10.0, latency="fixed", mean_ms=1.0, seed=3)
    n = len(req)
    rng = np.random.default_rng(3)
    answers = np.where(np.arange(n) < n // 5, "miss", "hit").astype(object)  # cold start
    answers[rng.random(n) < 0.05] = "stale"
    req["name"] = pd.Series(["/task/key"] * n, dtype="string")
    req["cache"] = pd.Series(answers, dtype="string")
    lat = np.where(answers == "miss", 20_000, 500).astype(np.int64)
    req["latency_us"] = lat
    req["latency_intended_us"] = lat
    stale = np.where(answers == "stale", 40.0, 0.0)
    req["stale_ms"] = stale
    truth = write_run(tmp_path / "000-size=100-r0", req, params={"service.cache.size": 100})
    spec = {
        "name": "caching",
        "locustfile": "caching.py",
        "duration_s": 10,
        "seed": 1,
        "scenario": {"keys": 1000, "dist": "zipf", "alpha": 1.0},
        "service": {"cache": {"policy": "lru", "size": 100, "ttl_s": 1.0}},
    }
    (truth.path / "spec.toml").write_text(tomli_w.dumps(spec))
    t = np.arange(0, 12, 1.0) + float(req["start"].min())
    pd.DataFrame(
        {
            "t": t,
            "source": "service",
            "metric": "scalelab_cache_origin_calls_total",
            "labels": "",
            "value": np.minimum(np.arange(12) * 25.0, 200.0),
        }
    ).to_parquet(truth.path / "metrics.parquet", index=False)
    return truth.path


def test_figures_of_a_known_run(tmp_path: Path) -> None:
    run = load_run(_caching_run(tmp_path))
    reads = len(run.requests)
    counts = answer_counts(run)
    assert sum(counts.values()) == reads
    assert hit_ratio(run) == pytest.approx(counts["hit"] / reads)
    over_time = hit_ratio_over_time(run)
    assert over_time["reads"].sum() == reads
    assert over_time["hit_ratio"].iloc[0] < 0.5 < over_time["hit_ratio"].iloc[-1]
    by_answer = latency_by_answer(run).set_index("answer")
    assert by_answer.loc["miss", "p50_ms"] == pytest.approx(20.0, rel=0.01)
    assert by_answer.loc["hit", "p99_ms"] == pytest.approx(0.5, rel=0.01)
    st = staleness(run)
    assert st.stale_reads == counts["stale"] and st.p99_ms == pytest.approx(40.0)
    assert origin_calls(run) == 200.0
    rate = origin_calls_per_second(run)
    assert rate["calls_per_s"].iloc[0] == pytest.approx(25.0)
    assert predicted_hit_ratio(run) == pytest.approx(che_zipf_hit_ratio(100, 1000, 1.0))
    table = caching_table([run])
    assert table.loc[0, "policy"] == "lru" and table.loc[0, "size"] == 100
    assert table.loc[0, "hit_ratio"] == pytest.approx(hit_ratio(run))
