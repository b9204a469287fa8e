"""Latency percentiles from HdrHistograms: per run, merged across runs, per group of repeats.

Percentiles are never averaged. Two runs' p99s averaged is not the p99 of
anything: a run with a slow tail and a run without one average to a figure that
neither the combined traffic nor either run shows. Repeats and processes are
combined by merging their histograms (exact: the counts add), then reading the
percentile of the merged distribution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from scalelab import hdr
from scalelab.analysis.load import Experiment, Run
from scalelab.errors import ScaleLabError

DEFAULT_POINTS: tuple[float, ...] = (50, 90, 99, 99.9)

HistSource: TypeAlias = Mapping[str, HdrHistogram] | HdrHistogram | Run | Experiment | Iterable[Run]


def percentile_column(q: float) -> str:
    """The column name of percentile ``q`` as summary.json spells it (99.9 -> ``p999_ms``)."""
    text = f"{q:g}".replace(".", "")
    return f"p{text}_ms"


@lru_cache(maxsize=8)
def _bucket_values(lowest: int, highest: int, digits: int) -> np.ndarray:
    """The value each counts index stands for (its highest equivalent value), per layout."""
    h = HdrHistogram(lowest, highest, digits)
    return np.array(
        [h.get_highest_equivalent_value(h.get_value_from_index(i)) for i in range(h.counts_len)],
        dtype=np.int64,
    )


@lru_cache(maxsize=8)
def _bucket_medians(lowest: int, highest: int, digits: int) -> np.ndarray:
    """The midpoint of each counts index's value range (what hdrh's mean weighs by)."""
    h = HdrHistogram(lowest, highest, digits)
    return np.array(
        [h._hdr_median_equiv_value(h.get_value_from_index(i)) for i in range(h.counts_len)],
        dtype=np.float64,
    )


def _layout(hist: HdrHistogram) -> tuple[int, int, int]:
    return (
        int(hist.lowest_trackable_value),
        int(hist.highest_trackable_value),
        int(hist.significant_figures),
    )


def _counts(hist: HdrHistogram, length: int) -> np.ndarray:
    return np.ctypeslib.as_array(hist.counts).astype(np.int64)[:length]


def histogram_arrays(hist: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """The recorded buckets of ``hist`` as (values in µs, counts), both sorted by value."""
    values = _bucket_values(*_layout(hist))
    counts = _counts(hist, len(values))
    nz = np.flatnonzero(counts)
    return values[nz], counts[nz]


def hdr_values_us(latencies_us: Sequence[float] | np.ndarray) -> np.ndarray:
    """Each latency (µs) as HdrHistogram reports it: clamped into the range of
    :func:`scalelab.hdr.new_histogram`, then raised to the highest value of its bucket.

    The percentiles of these values by HdrHistogram's rank rule (:func:`hdr_rank`)
    are exactly those of a histogram of the latencies, without building one (used
    per time bin, where a histogram per bin would be slow).
    """
    v = np.clip(np.asarray(latencies_us, dtype=np.int64), hdr.LOWEST_US, hdr.HIGHEST_US)
    probe = hdr.new_histogram()
    magnitude = int(probe.sub_bucket_count - 1).bit_length() + int(probe.unit_magnitude)
    bit_length = np.frexp(v.astype(np.float64))[1].astype(np.int64)  # exact below 2**53
    shift = np.maximum(bit_length - magnitude, 0)
    return ((v >> shift) << shift) + (np.int64(1) << shift) - 1


def hdr_rank(q: float | np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """The 1-based rank HdrHistogram reports as percentile ``q`` (0-100) of ``n`` values."""
    q_arr = np.minimum(np.asarray(q, dtype=float), 100.0)
    n_arr = np.asarray(n)
    rank = np.maximum((q_arr * n_arr / 100.0 + 0.5).astype(np.int64), 1)
    return np.minimum(rank, np.maximum(n_arr, 1))


def hist_mean_ms(hist: HdrHistogram) -> float:
    """The mean latency of ``hist`` in ms (as hdrh computes it, without its Python loop)."""
    medians = _bucket_medians(*_layout(hist))
    counts = _counts(hist, len(medians))
    total = counts.sum()
    return float(counts @ medians / total / 1000.0) if total else float("nan")


def percentiles_from_counts(
    values: np.ndarray, counts: np.ndarray, points: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Percentiles (0-100) of a bucketed distribution, by HdrHistogram's rule; NaN when empty.

    ``counts`` may be 2-D (one distribution per row, same ``values``), which is
    how the bootstrap evaluates many resampled histograms at once.
    """
    q = np.asarray(points, dtype=float)
    c = np.atleast_2d(np.asarray(counts))
    cum = np.cumsum(c, axis=1)
    total = cum[:, -1:] if cum.shape[1] else np.zeros((c.shape[0], 1))
    target = np.maximum((np.minimum(q, 100.0)[None, :] * total / 100.0 + 0.5).astype(np.int64), 1)
    out = np.full(target.shape, np.nan)
    for row in range(c.shape[0]):
        if total[row, 0] <= 0:
            continue
        idx = np.searchsorted(cum[row], target[row], side="left")
        out[row] = values[np.minimum(idx, len(values) - 1)]
    return out if np.ndim(counts) > 1 else out[0]


def hist_percentiles_ms(hist: HdrHistogram, points: Sequence[float] = DEFAULT_POINTS) -> np.ndarray:
    """Percentiles (0-100) of one histogram in milliseconds."""
    values, counts = histogram_arrays(hist)
    return percentiles_from_counts(values, counts, points) / 1000.0


def _runs_of(source: Experiment | Iterable[Run] | Run) -> list[Run]:
    if isinstance(source, Run):
        return [source]
    if isinstance(source, Experiment):
        return list(source.runs)
    return list(source)


def histograms_by_label(source: HistSource, tag: str = "intended") -> dict[str, HdrHistogram]:
    """Histograms labelled for a table or plot, from histograms or runs."""
    if isinstance(source, HdrHistogram):
        return {tag: source}
    if isinstance(source, Mapping):
        return dict(source)
    runs = _runs_of(source)
    if runs and not all(isinstance(r, Run) for r in runs):
        raise ScaleLabError(
            "percentiles need HdrHistograms by label, a Run, an Experiment or a list of Runs; "
            f"got a list of {type(runs[0]).__name__}"
        )
    return {r.run_id: r.measured_histogram(tag) for r in runs}


def percentile_table(
    source: HistSource, points: Sequence[float] = DEFAULT_POINTS, tag: str = "intended"
) -> pd.DataFrame:
    """One row per histogram (or run): count, mean, the percentile ``points`` and max, in ms."""
    rows: list[dict[str, Any]] = []
    for label, hist in histograms_by_label(source, tag).items():
        count = int(hist.get_total_count())
        row: dict[str, Any] = {"label": label, "count": count}
        row["mean_ms"] = hist_mean_ms(hist)
        for q, v in zip(points, hist_percentiles_ms(hist, points), strict=True):
            row[percentile_column(q)] = v
        row["max_ms"] = hist.get_max_value() / 1000.0 if count else np.nan
        rows.append(row)
    columns = ["label", "count", "mean_ms", *(percentile_column(q) for q in points), "max_ms"]
    return pd.DataFrame(rows, columns=columns).set_index("label")


def merged_histogram(
    source: Experiment | Iterable[Run] | Iterable[HdrHistogram] | Run, tag: str = "intended"
) -> HdrHistogram:
    """One histogram holding every request of ``source`` (merged exactly, never averaged).

    A run contributes its measured requests (after any warm-up), as in summary.json.
    """
    items = [source] if isinstance(source, Run) else _items(source)
    hists = [i.measured_histogram(tag) if isinstance(i, Run) else i for i in items]
    return hdr.merge(hists)


def _items(source: Any) -> list[Any]:
    if isinstance(source, Experiment):
        return list(source.runs)
    return list(source)


def resolve_param(experiment: Experiment, name: str) -> str:
    """The full parameter name meant by ``name`` (exact, or the last part of a dotted key)."""
    names = experiment.param_names
    if name in names or name in experiment.table.columns:
        return name
    matches = [n for n in names if n.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(names) or "none"
    raise ScaleLabError(
        f"{experiment.path}: no parameter {name!r} (ambiguous or unknown); parameters are: {known}"
    )


def group_percentiles(
    experiment: Experiment,
    by: str | Sequence[str],
    points: Sequence[float] = DEFAULT_POINTS,
    tag: str = "intended",
) -> pd.DataFrame:
    """Per value of parameter(s) ``by``: the repeats' histograms merged, then percentiles.

    Columns: ``by``, ``runs``, ``requests``, ``errors``, ``error_rate``, throughput
    (``throughput_rps`` is the mean over repeats, ``throughput_rps_std`` its spread:
    a rate averages honestly, a percentile does not), then ``mean_ms``, the
    percentiles and ``max_ms`` of the merged histogram.
    """
    keys = [by] if isinstance(by, str) else list(by)
    cols = [resolve_param(experiment, k) for k in keys]
    groups: dict[tuple[Any, ...], list[Run]] = {}
    for run in experiment.runs:
        key = tuple(run.params.get(c, run.summary.get(c)) for c in cols)
        groups.setdefault(key, []).append(run)
    rows: list[dict[str, Any]] = []
    for key, runs in groups.items():
        merged = merged_histogram(runs, tag)
        count = int(merged.get_total_count())
        row: dict[str, Any] = dict(zip(cols, key, strict=True))
        row["runs"] = len(runs)
        row["requests"] = sum(int(r.summary.get("requests", 0) or 0) for r in runs)
        row["errors"] = sum(int(r.summary.get("errors", 0) or 0) for r in runs)
        row["error_rate"] = row["errors"] / row["requests"] if row["requests"] else np.nan
        tput = np.array([float(r.summary.get("throughput_rps", np.nan)) for r in runs])
        row["throughput_rps"] = float(np.nanmean(tput)) if np.isfinite(tput).any() else np.nan
        row["throughput_rps_std"] = float(np.nanstd(tput, ddof=1)) if len(runs) > 1 else np.nan
        row["count"] = count
        row["mean_ms"] = hist_mean_ms(merged)
        for q, v in zip(points, hist_percentiles_ms(merged, points), strict=True):
            row[percentile_column(q)] = v
        row["max_ms"] = merged.get_max_value() / 1000.0 if count else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    try:
        return frame.sort_values(cols, kind="stable").reset_index(drop=True)
    except TypeError:  # mixed types in a parameter: keep run order
        return frame
