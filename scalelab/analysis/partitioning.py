"""What partitioning did in a run: load per partition and per worker, partitions touched per
query, keys moved by repartitioning, and the partition-count sweep's overhead knee.

The router's counters (``scalelab_partition_*``, ``scalelab_worker_*``,
``scalelab_router_*``, see :mod:`scalelab.data.metrics`) are read from
``metrics.parquet``: their increase over the run, or over a window of Unix
times (a labelled counter that had not appeared yet counts as 0). What each
request touched comes from ``requests.parquet`` (``partition``: the
partitions, comma-separated; ``rows``: the rows scanned).

Theory to compare with: :func:`expected_moved_share` (a key's chance of moving
when a partition is added, consistent against modulo hashing) and
:func:`expected_partition_load` (each partition's share of requests for a
known key popularity, such as Zipf's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from scalelab.analysis.load import Experiment, Run
from scalelab.analysis.percentiles import group_percentiles

PARTITION_SERIES = {
    "requests": "scalelab_partition_requests_total",
    "task_seconds": "scalelab_partition_task_seconds_total",
    "rows_scanned": "scalelab_partition_rows_scanned_total",
    "bytes_moved": "scalelab_partition_bytes_moved_total",
}
WORKER_SERIES = {
    "requests": "scalelab_worker_requests_total",
    "task_seconds": "scalelab_worker_task_seconds_total",
    "bytes_moved": "scalelab_worker_bytes_moved_total",
}
SWEEP_PARAM = "service.router.partitions"


def _label(text: str, name: str) -> str:
    for part in str(text).split(","):
        key, sep, value = part.partition("=")
        if sep and key == name:
            return value
    return ""


def _value_at(times: np.ndarray, values: np.ndarray, t: float) -> float:
    i = int(np.searchsorted(times, t, side="right")) - 1
    return float(values[i]) if i >= 0 else 0.0


def counter_by_label(
    run: Run, metric: str, label: str, window: tuple[float, float] | None = None
) -> pd.Series:
    """A labelled service counter's increase per value of ``label`` (over ``window`` if given)."""
    m = run.metrics
    if m.empty:
        return pd.Series(dtype="float64")
    sel = m.loc[(m["source"] == "service") & (m["metric"] == metric)]
    out: dict[str, float] = {}
    for labels, group in sel.groupby("labels", sort=True):
        ordered = group.sort_values("t")
        times = ordered["t"].to_numpy(dtype=float)
        values = ordered["value"].to_numpy(dtype=float)
        if window is None:
            increase = float(values[-1])
        else:
            increase = _value_at(times, values, window[1]) - _value_at(times, values, window[0])
        key = _label(str(labels), label)
        out[key] = out.get(key, 0.0) + increase
    return pd.Series(out, dtype="float64")


def _load_frame(
    run: Run, series: dict[str, str], label: str, window: tuple[float, float] | None
) -> pd.DataFrame:
    columns = {
        name: counter_by_label(run, metric, label, window) for name, metric in series.items()
    }
    frame = pd.DataFrame(columns).fillna(0.0)
    frame.index.name = label
    if frame.empty:
        return frame
    if label == "partition":
        frame.index = frame.index.astype(int)
    frame = frame.sort_index()
    total = frame["requests"].sum()
    frame["share"] = frame["requests"] / total if total else 0.0
    return frame


def partition_load(run: Run, window: tuple[float, float] | None = None) -> pd.DataFrame:
    """Per partition: ``requests`` (partition tasks), ``task_seconds``, ``rows_scanned``,
    ``bytes_moved``, and ``share`` of the requests."""
    return _load_frame(run, PARTITION_SERIES, "partition", window)


def worker_load(run: Run, window: tuple[float, float] | None = None) -> pd.DataFrame:
    """Per worker: ``requests`` (partition tasks), ``task_seconds``, ``bytes_moved`` (received)."""
    return _load_frame(run, WORKER_SERIES, "worker", window)


def imbalance(load: pd.Series | Sequence[float] | np.ndarray) -> float:
    """Max over mean of a load (1.0: perfectly even); NaN for no load at all."""
    values = np.asarray(load, dtype=float)
    if not len(values) or values.mean() <= 0:
        return float("nan")
    return float(values.max() / values.mean())


def touched(run: Run) -> pd.DataFrame:
    """One row per request that named its partitions: ``name``, ``partitions`` touched, ``rows``."""
    req = run.requests
    if req.empty or "partition" not in req:
        return pd.DataFrame({"name": [], "partitions": [], "rows": []})
    named = req.loc[req["partition"].fillna("").astype(str) != ""]
    counts = named["partition"].astype(str).str.count(",") + 1
    rows = named["rows"] if "rows" in named else pd.Series(np.nan, index=named.index)
    return pd.DataFrame(
        {"name": named["name"].to_numpy(), "partitions": counts.to_numpy(), "rows": rows.to_numpy()}
    )


def partitions_touched(run: Run) -> pd.DataFrame:
    """Per request name: requests, mean and max partitions touched, mean rows scanned."""
    per = touched(run)
    if per.empty:
        return pd.DataFrame(columns=["requests", "mean_partitions", "max_partitions", "mean_rows"])
    grouped = per.groupby("name")
    return pd.DataFrame(
        {
            "requests": grouped.size(),
            "mean_partitions": grouped["partitions"].mean(),
            "max_partitions": grouped["partitions"].max(),
            "mean_rows": grouped["rows"].mean(),
        }
    )


def keys_moved(run: Run) -> pd.DataFrame:
    """One row per repartitioning seen in the run: when (``t``, the scrape after it), the keys
    looked at and moved, their ``share``, and rows and bytes moved."""
    m = run.metrics
    names = {
        "keys": "scalelab_router_keys_total",
        "keys_moved": "scalelab_router_keys_moved_total",
        "rows_moved": "scalelab_router_rows_moved_total",
    }
    if m.empty:
        return pd.DataFrame(columns=["t", *names, "share", "bytes_moved"])
    svc = m.loc[m["source"] == "service"]
    wide = {}
    for column, metric in names.items():
        s = svc.loc[svc["metric"] == metric].groupby("t")["value"].sum()
        wide[column] = s
    moved = svc.loc[
        (svc["metric"] == "scalelab_router_bytes_moved_total")
        & svc["labels"].astype(str).str.contains("cause=repartition")
    ]
    wide["bytes_moved"] = moved.groupby("t")["value"].sum()
    frame = pd.DataFrame(wide).sort_index().ffill().fillna(0.0)
    steps = frame.diff()
    if len(frame):
        steps.iloc[0] = frame.iloc[0]
    steps = steps.loc[steps["keys"] > 0].copy()
    steps["share"] = steps["keys_moved"] / steps["keys"]
    steps.index.name = "t"
    return steps.reset_index()[["t", *names, "share", "bytes_moved"]]


def expected_moved_share(kind: str, partitions: int, added: int = 1) -> float:
    """The share of keys that move when ``added`` partitions join ``partitions``.

    ``consistent`` (a hash ring): ``added / (n + added)``, all to the new ones;
    ``hash`` (modulo): a key stays only when ``h % n == h % (n + added)``, which
    for one added partition is ``1 / (n + 1)`` of keys, so ``n / (n + 1)`` move.
    """
    n, m = partitions, partitions + added
    if kind == "consistent":
        return added / m
    if kind == "hash":
        # the residues repeat every lcm(n, m) hashes: count the ones that change
        lcm = n * m // np.gcd(n, m)
        h = np.arange(lcm)
        return float(np.mean(h % n != h % m))
    raise ValueError(f"kind {kind!r}: use 'consistent' or 'hash'")


def expected_partition_load(
    popularity: Sequence[float] | np.ndarray, assignment: Sequence[int] | np.ndarray
) -> np.ndarray:
    """Each partition's share of requests when key ``i`` has probability ``popularity[i]`` and
    lives in partition ``assignment[i]``."""
    p = np.asarray(popularity, dtype=float)
    a = np.asarray(assignment, dtype=np.int64)
    return np.bincount(a, weights=p, minlength=int(a.max()) + 1 if len(a) else 0) / p.sum()


def sweep_table(exp: Experiment, param: str = SWEEP_PARAM) -> pd.DataFrame:
    """Per value of ``param``: throughput (mean over repeats) and latency percentiles (merged
    histograms), sorted by ``param``."""
    table = group_percentiles(exp, by=param)
    column = table.columns[0]
    return table.sort_values(column, kind="stable").reset_index(drop=True)


def overhead_knee(table: pd.DataFrame, x: str | None = None, y: str = "throughput_rps") -> Any:
    """The value of ``x`` (by default the table's first column) with the most ``y``: beyond it
    more partitions cost more in per-task overhead than they give in parallelism."""
    if table.empty or y not in table:
        return None
    x = x or str(table.columns[0])
    best = int(np.argmax(table[y].astype(float).to_numpy()))
    return table[x].iloc[best]
