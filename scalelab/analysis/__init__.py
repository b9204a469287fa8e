"""Turn run and experiment directories into tidy pandas frames and the figures the labs need.

Load with :func:`load_run` / :func:`load_experiment`; frames per request, per
second and per run; percentiles from merged HdrHistograms (never averaged);
Little's law, a Universal Scalability Law fit, M/M/c (Erlang C) predictions,
bootstrap confidence intervals and A/B comparison; 2^k·r factorial designs
(effects, allocation of variation, intervals: :mod:`scalelab.analysis.factorial`);
for caches, hit ratios, latency by answer, origin load, staleness and Che's
approximation of LRU (:mod:`scalelab.analysis.caching`); what each layer of the
service's stack did (:func:`layer_table`); for failures, faults with their
spans, the steady state phase by phase and retry amplification
(:mod:`scalelab.analysis.failure`); alerting rules tried on a run's series with
``promtool`` (:mod:`scalelab.analysis.alerts`).
"""

from __future__ import annotations

from scalelab.analysis.alerts import firing_times, promtool_series, try_rule
from scalelab.analysis.caching import (
    Staleness,
    caching_table,
    che_characteristic_time,
    che_hit_ratio,
    che_zipf_hit_ratio,
    hit_ratio,
    hit_ratio_over_time,
    latency_by_answer,
    origin_calls_per_second,
    predicted_hit_ratio,
    served_ratio,
    simulate_lru,
    staleness,
    zipf_popularity,
)
from scalelab.analysis.factorial import Effect, FactorialResult, factorial_design
from scalelab.analysis.failure import (
    attempts_per_second,
    fault_spans,
    fault_table,
    phase_table,
)
from scalelab.analysis.frames import per_second, requests_frame, runs_frame
from scalelab.analysis.layers import layer_counters, layer_table
from scalelab.analysis.load import (
    Experiment,
    Run,
    is_experiment_dir,
    is_run_dir,
    load_experiment,
    load_run,
)
from scalelab.analysis.percentiles import (
    group_percentiles,
    histogram_arrays,
    merged_histogram,
    percentile_column,
    percentile_table,
)
from scalelab.analysis.prometheus import histogram_buckets
from scalelab.analysis.queueing import (
    ErlangC,
    LittleLaw,
    MMCComparison,
    erlang_c,
    little_law,
    mmc_prediction,
)
from scalelab.analysis.stats import ABResult, PercentileCI, bootstrap_percentile_ci, compare
from scalelab.analysis.usl import USLFit, fit_usl, usl_throughput

__all__ = [
    "ABResult",
    "Effect",
    "ErlangC",
    "Experiment",
    "FactorialResult",
    "LittleLaw",
    "MMCComparison",
    "PercentileCI",
    "Run",
    "Staleness",
    "USLFit",
    "attempts_per_second",
    "bootstrap_percentile_ci",
    "caching_table",
    "che_characteristic_time",
    "che_hit_ratio",
    "che_zipf_hit_ratio",
    "compare",
    "erlang_c",
    "factorial_design",
    "fault_spans",
    "fault_table",
    "firing_times",
    "fit_usl",
    "group_percentiles",
    "histogram_arrays",
    "histogram_buckets",
    "hit_ratio",
    "hit_ratio_over_time",
    "is_experiment_dir",
    "is_run_dir",
    "latency_by_answer",
    "layer_counters",
    "layer_table",
    "little_law",
    "load_experiment",
    "load_run",
    "merged_histogram",
    "mmc_prediction",
    "origin_calls_per_second",
    "per_second",
    "percentile_column",
    "percentile_table",
    "phase_table",
    "predicted_hit_ratio",
    "promtool_series",
    "requests_frame",
    "runs_frame",
    "served_ratio",
    "simulate_lru",
    "staleness",
    "try_rule",
    "usl_throughput",
    "zipf_popularity",
]
