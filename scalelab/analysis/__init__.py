"""Turn run and experiment directories into tidy pandas frames and the figures the labs need.

Load with :func:`load_run` / :func:`load_experiment`; frames per request, per
second and per run; percentiles from merged HdrHistograms (never averaged);
Little's law, a Universal Scalability Law fit, M/M/c (Erlang C) predictions,
bootstrap confidence intervals and A/B comparison.
"""

from __future__ import annotations

from scalelab.analysis.frames import per_second, requests_frame, runs_frame
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
    "ErlangC",
    "Experiment",
    "LittleLaw",
    "MMCComparison",
    "PercentileCI",
    "Run",
    "USLFit",
    "bootstrap_percentile_ci",
    "compare",
    "erlang_c",
    "fit_usl",
    "group_percentiles",
    "histogram_arrays",
    "is_experiment_dir",
    "is_run_dir",
    "little_law",
    "load_experiment",
    "load_run",
    "merged_histogram",
    "mmc_prediction",
    "per_second",
    "percentile_column",
    "percentile_table",
    "requests_frame",
    "runs_frame",
    "usl_throughput",
]
