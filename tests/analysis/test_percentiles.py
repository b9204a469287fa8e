"""Percentiles from HDR histograms: accurate, merged across runs, never averaged."""

from __future__ import annotations

import numpy as np
import pytest
from rundirs import exponential_percentile_ms, histogram_of, sample_latency_us

from scalelab import hdr
from scalelab.analysis import (
    Experiment,
    group_percentiles,
    histogram_arrays,
    merged_histogram,
    percentile_column,
    percentile_table,
)
from scalelab.analysis.percentiles import hist_percentiles_ms

POINTS = (50, 90, 99, 99.9)


def _exact_ms(values_us: np.ndarray, q: float) -> float:
    """The sample percentile by HdrHistogram's rank rule, from the raw values."""
    s = np.sort(values_us)
    k = max(int(q * len(s) / 100 + 0.5), 1)
    return float(s[k - 1]) / 1000.0


def test_column_names_match_summary_json() -> None:
    assert [percentile_column(q) for q in POINTS] == ["p50_ms", "p90_ms", "p99_ms", "p999_ms"]


def test_percentiles_match_hdrh_and_the_generating_distribution() -> None:
    rng = np.random.default_rng(11)
    lat = sample_latency_us("exponential", 200_000, rng, mean_ms=5.0)
    hist = histogram_of(lat)
    ours = hist_percentiles_ms(hist, POINTS)
    for q, v in zip(POINTS, ours, strict=True):
        # identical to hdrh's own reading, within HDR precision of the raw sample
        assert v == pytest.approx(hist.get_value_at_percentile(q) / 1000.0)
        assert v == pytest.approx(_exact_ms(lat, q), rel=2e-3)
        # and close to the distribution itself (sampling error at 200k draws)
        assert v == pytest.approx(exponential_percentile_ms(5.0, q), rel=0.03)
    values, counts = histogram_arrays(hist)
    assert counts.sum() == len(lat)
    assert np.all(np.diff(values) > 0)


def test_fixed_and_bimodal_distributions() -> None:
    rng = np.random.default_rng(3)
    fixed = histogram_of(sample_latency_us("fixed", 5000, rng, mean_ms=20.0))
    assert list(hist_percentiles_ms(fixed, POINTS)) == pytest.approx([20.0] * 4, rel=1e-3)
    bi = histogram_of(
        sample_latency_us("bimodal", 50_000, rng, fast_ms=2.0, slow_ms=100.0, slow_share=0.05)
    )
    p50, p90, p99, _ = hist_percentiles_ms(bi, POINTS)
    assert 1.9 <= p50 <= 2.1 and 1.9 <= p90 <= 2.11
    assert 95 <= p99 <= 105


def test_percentile_table_of_histograms_and_runs(two_kinds: Experiment) -> None:
    table = percentile_table(two_kinds)
    assert list(table.index) == [r.run_id for r in two_kinds.runs]
    for run in two_kinds.runs:
        row = table.loc[run.run_id]
        assert row["count"] == run.summary["requests"]
        for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
            assert row[key] == pytest.approx(run.summary[key])
    one = percentile_table({"x": histogram_of(np.array([1000] * 10))}, points=(50,))
    assert list(one.columns) == ["count", "mean_ms", "p50_ms", "max_ms"]
    empty = percentile_table({"none": hdr.new_histogram()})
    assert empty.loc["none", "count"] == 0 and np.isnan(empty.loc["none", "p99_ms"])


def test_merged_percentiles_equal_the_concatenated_data_and_averaging_is_wrong() -> None:
    rng = np.random.default_rng(5)
    # one healthy run with many requests, one run with a slow tail and few requests
    fast = sample_latency_us("exponential", 20_000, rng, mean_ms=2.0)
    slow = sample_latency_us("bimodal", 2_000, rng, fast_ms=2.0, slow_ms=200.0, slow_share=0.2)
    merged = merged_histogram([histogram_of(fast), histogram_of(slow)])
    assert merged.get_total_count() == len(fast) + len(slow)
    both = np.concatenate([fast, slow])
    merged_p = hist_percentiles_ms(merged, POINTS)
    for q, v in zip(POINTS, merged_p, strict=True):
        assert v == pytest.approx(_exact_ms(both, q), rel=2e-3)
    averaged = (
        hist_percentiles_ms(histogram_of(fast), POINTS)
        + hist_percentiles_ms(histogram_of(slow), POINTS)
    ) / 2
    # 400 of 22,000 requests (1.8 %) are slow: the true p99 is ~200 ms, the true p90 ~4.6 ms.
    # Averaging the runs' p99s gives ~105 ms and their p90s ~100 ms: latencies that match
    # neither the traffic nor either run, because each run weighs the same whatever its count.
    assert merged_p[2] > 190
    assert averaged[2] < 0.6 * merged_p[2]
    assert averaged[1] > 10 * merged_p[1]


def test_group_percentiles_merge_repeats(two_kinds: Experiment) -> None:
    table = group_percentiles(two_kinds, by="kind")  # the last part of the dotted key is enough
    assert list(table["service.executor.kind"]) == ["batched", "direct"]
    assert list(table["runs"]) == [2, 2]
    for _, row in table.iterrows():
        runs = [r for r in two_kinds.runs if r.params["service.executor.kind"] == row.iloc[0]]
        merged = merged_histogram(runs)
        assert row["count"] == merged.get_total_count() == row["requests"]
        assert row["p99_ms"] == pytest.approx(merged.get_value_at_percentile(99) / 1000.0)
        tputs = [r.summary["throughput_rps"] for r in runs]
        assert row["throughput_rps"] == pytest.approx(np.mean(tputs))
    direct = table.set_index("service.executor.kind").loc["direct"]
    assert direct["p99_ms"] == pytest.approx(exponential_percentile_ms(5.0, 99), rel=0.1)


def test_unknown_group_parameter_is_named(two_kinds: Experiment) -> None:
    from scalelab.errors import ScaleLabError

    with pytest.raises(ScaleLabError, match="no parameter 'users'.*service.executor.kind"):
        group_percentiles(two_kinds, by="users")
