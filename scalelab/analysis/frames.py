"""Tidy frames from runs: one row per request, per second, or per run with its parameters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from scalelab.analysis.load import Experiment, Run
from scalelab.analysis.percentiles import hdr_rank, hdr_values_us, percentile_column

LATENCY_COLUMNS = {"intended": "latency_intended_us", "actual": "latency_us"}


def requests_frame(source: Run | Experiment | Iterable[Run]) -> pd.DataFrame:
    """Every row of one or more runs, with ``run_id``, the run's parameters, and
    ``end`` (completion time), ``latency_ms``, ``latency_intended_ms``, ``measured``
    (False for the warm-up's requests) and ``sent`` (False for the open loop's drops,
    which have no latency) added. summary.json counts the rows both measured and sent."""
    runs = (
        [source]
        if isinstance(source, Run)
        else list(source.runs if isinstance(source, Experiment) else source)
    )
    frames: list[pd.DataFrame] = []
    for run in runs:
        df = run.requests.copy()
        df.insert(0, "run_id", run.run_id)
        for key, value in run.params.items():
            if key not in df.columns:
                df[key] = value
        df["measured"] = run.measured
        df["sent"] = run.sent
        frames.append(df)
    if not frames:
        return pd.DataFrame({"run_id": pd.Series(dtype=object)})
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    out["end"] = out["start"].to_numpy(dtype=float) + out["latency_us"].to_numpy(dtype=float) / 1e6
    out["latency_ms"] = out["latency_us"].to_numpy(dtype=float) / 1000.0
    out["latency_intended_ms"] = out["latency_intended_us"].to_numpy(dtype=float) / 1000.0
    return out


def load_start(run: Run) -> float | None:
    """When load began: the first request's intended start, else the ``load_start`` event.

    The event marks when the load generator was launched, which is a second or
    two before its first request; time series start at the first request so
    that start-up does not look like a stall.
    """
    req = run.requests
    if len(req):
        return float(req["intended_start"].min())
    return run.event_time("load_start")


def per_second(
    run: Run,
    bin_s: float = 1.0,
    latency: str = "intended",
    by: str = "end",
    points: Sequence[float] = (50, 90, 99),
) -> pd.DataFrame:
    """Throughput, ok/error counts and latency percentiles per time bin of one run.

    ``t`` is the bin's start in seconds since the first request's intended start
    (``frame.attrs["t0"]`` holds that Unix time); a warm-up, if any, is included.
    A request counts in the bin where it completed (``by="end"``, as throughput is
    usually read) or where it was meant to start
    (``by="intended_start"``: what a user arriving then experienced, which shows
    a stall as the ramp of requests queued behind it). Latency is the intended
    (coordinated-omission corrected) figure unless ``latency="actual"``. Bins with no
    request are kept, with zero counts and NaN latencies, so a stall shows as a gap.

    As in summary.json, only requests sent count (``requests``, ``errors``,
    throughput, latencies); the open loop's drops are the ``dropped`` column, binned
    by when they were due. Percentiles and ``max_ms`` follow HdrHistogram's rule,
    so a bin spanning the measured time gives summary.json's figures exactly;
    ``mean_ms`` is the plain mean of the latencies recorded.
    """
    if by not in ("end", "start", "intended_start"):
        raise ValueError(f"by={by!r}: use 'end', 'start' or 'intended_start'")
    col = LATENCY_COLUMNS.get(latency)
    if col is None:
        raise ValueError(f"latency={latency!r}: use 'intended' or 'actual'")
    pcols = [percentile_column(q) for q in points]
    columns = [
        "t",
        "requests",
        "ok",
        "errors",
        "dropped",
        "throughput_rps",
        "ok_rps",
        "error_rate",
        "mean_ms",
    ]
    every = run.requests
    t0 = load_start(run)
    if every.empty or t0 is None:
        empty = pd.DataFrame({c: pd.Series(dtype=float) for c in [*columns, *pcols, "max_ms"]})
        empty.attrs["t0"] = t0
        return empty
    start = every["start"].to_numpy(dtype=float)
    if by == "end":
        when = start + every["latency_us"].to_numpy(dtype=float) / 1e6
    else:
        when = every[by].to_numpy(dtype=float)
    all_idx = np.maximum(np.floor((when - t0) / bin_s).astype(np.int64), 0)
    nbins = int(all_idx.max()) + 1
    sent = run.sent
    idx = all_idx[sent]
    lat_us = every[col].to_numpy(dtype=np.int64)[sent]
    ok = every["ok"].to_numpy(dtype=bool)[sent]
    counts = np.bincount(idx, minlength=nbins)
    oks = np.bincount(idx, weights=ok.astype(float), minlength=nbins).astype(np.int64)
    sums = np.bincount(idx, weights=lat_us / 1000.0, minlength=nbins)
    frame = pd.DataFrame(
        {
            "t": np.arange(nbins, dtype=float) * bin_s,
            "requests": counts,
            "ok": oks,
            "errors": counts - oks,
            "dropped": np.bincount(all_idx[~sent], minlength=nbins),
            "throughput_rps": counts / bin_s,
            "ok_rps": oks / bin_s,
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["error_rate"] = np.where(counts > 0, (counts - oks) / np.maximum(counts, 1), np.nan)
        frame["mean_ms"] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    # HdrHistogram's values, sorted within each bin: the k-th of a bin is at its offset + k - 1
    values = hdr_values_us(lat_us)
    ordered = np.append(values[np.lexsort((values, idx))].astype(float) / 1000.0, np.nan)
    offsets = np.cumsum(counts) - counts
    empty = counts == 0
    for q, name in zip(points, pcols, strict=True):
        at = offsets + hdr_rank(q, counts) - 1
        frame[name] = ordered[np.where(empty, -1, at)]  # -1: the NaN at the end
    frame["max_ms"] = ordered[np.where(empty, -1, offsets + counts - 1)]
    frame.attrs["t0"] = t0
    frame.attrs["run_id"] = run.run_id
    return frame


def runs_frame(experiment: Experiment) -> pd.DataFrame:
    """One row per run: ``run_id``, ``status``, ``repeat``, the parameters and summary figures."""
    return experiment.table.copy()
