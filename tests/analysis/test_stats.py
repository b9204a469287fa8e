"""Bootstrap confidence intervals cover the truth; A/B finds real differences and only those."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rundirs import exponential_percentile_ms, make_requests, write_experiment

from scalelab.analysis import bootstrap_percentile_ci, compare, load_experiment
from scalelab.errors import ScaleLabError


def test_ci_covers_the_true_percentile_about_as_often_as_it_claims() -> None:
    rng = np.random.default_rng(123)
    truth = exponential_percentile_ms(5.0, 99)
    trials, covered = 300, 0
    for i in range(trials):
        sample = rng.exponential(5.0, 2000)
        ci = bootstrap_percentile_ci(sample, 99, n_boot=1000, confidence=0.95, seed=i)
        assert ci.low <= ci.estimate <= ci.high
        covered += ci.low <= truth <= ci.high
    assert 0.88 <= covered / trials <= 0.995


def test_ci_narrows_with_more_data_and_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    small = bootstrap_percentile_ci(rng.exponential(5.0, 1_000), 90, seed=4)
    large = bootstrap_percentile_ci(rng.exponential(5.0, 300_000), 90, seed=4)
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert large.estimate == pytest.approx(exponential_percentile_ms(5.0, 90), rel=0.01)
    again = bootstrap_percentile_ci(rng.exponential(5.0, 10), 50, seed=7)
    assert again.n == 10
    x = np.arange(1.0, 101.0)
    assert bootstrap_percentile_ci(x, 50, seed=3) == bootstrap_percentile_ci(x, 50, seed=3)
    with pytest.raises(ScaleLabError, match="q=0.0"):
        bootstrap_percentile_ci(x, 0.0)
    with pytest.raises(ScaleLabError, match="no latencies"):
        bootstrap_percentile_ci([], 50)


def _exp(tmp_path: Path, mean_a: float, mean_b: float, repeats: int = 1, rate_b: float = 1000.0):
    runs = []
    for r in range(repeats):
        runs.append(
            ({"side": "a"}, make_requests(rate=1000, duration_s=10, mean_ms=mean_a, seed=r))
        )
    for r in range(repeats):
        runs.append(
            ({"side": "b"}, make_requests(rate=rate_b, duration_s=10, mean_ms=mean_b, seed=100 + r))
        )
    exp_dir, _ = write_experiment(tmp_path, runs)
    exp = load_experiment(exp_dir)
    a = [r for r in exp.runs if r.params["side"] == "a"]
    b = [r for r in exp.runs if r.params["side"] == "b"]
    return a, b


def test_ab_detects_a_real_20_percent_difference(tmp_path: Path) -> None:
    a, b = _exp(tmp_path, 5.0, 6.0)
    for metric in ("p99", "p50", "mean", "p99.9"):
        res = compare(a[0], b[0], metric=metric)
        assert res.verdict == "a faster", str(res)
        assert res.ratio == pytest.approx(1.2, rel=0.1)
        assert res.ci_low > 0 and res.over == "requests"
    flipped = compare(b[0], a[0], metric="p99")
    assert flipped.verdict == "b faster"
    assert flipped.difference < 0 and flipped.ci_high < 0
    assert "excludes 0" in flipped.rule


def test_ab_says_no_difference_for_the_same_distribution(tmp_path: Path) -> None:
    a, b = _exp(tmp_path, 5.0, 5.0)
    for metric in ("p99", "p50", "mean", "throughput"):
        res = compare(a[0], b[0], metric=metric)
        assert res.verdict == "no significant difference", str(res)
        assert res.ci_low <= 0 <= res.ci_high or abs(res.ratio - 1) < 0.01


def test_ab_over_repeats_merges_histograms(tmp_path: Path) -> None:
    a, b = _exp(tmp_path, 5.0, 6.0, repeats=3)
    res = compare(a, b, metric="p99")
    assert res.over == "repeats"
    assert res.verdict == "a faster", str(res)
    same = compare(a, a, metric="p99", over="repeats")
    assert same.verdict == "no significant difference"
    assert same.difference == 0.0
    res_mean = compare(a, b, metric="mean", over="repeats")
    assert res_mean.verdict == "a faster"
    assert res_mean.a == pytest.approx(5.0, rel=0.03)


def test_ab_on_throughput(tmp_path: Path) -> None:
    a, b = _exp(tmp_path, 5.0, 5.0, rate_b=1200.0)
    res = compare(a[0], b[0], metric="throughput")
    assert res.verdict == "b faster", str(res)
    assert res.ratio == pytest.approx(1.2, rel=0.05)


def test_ab_on_raw_latencies_and_bad_input() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.exponential(5.0, 20_000), rng.exponential(6.0, 20_000)
    assert compare(x, y, metric="p90").verdict == "a faster"
    with pytest.raises(ScaleLabError, match="metric='p99x'"):
        compare(x, y, metric="p99x")
    with pytest.raises(ScaleLabError, match="throughput needs runs"):
        compare(x, y, metric="throughput")
    with pytest.raises(ScaleLabError, match="two or more runs"):
        compare(x, y, over="repeats")
