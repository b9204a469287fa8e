"""Plots of the partitioning lab, and the report's section for it.

- :func:`partition_load_bars`: requests per partition (or worker), the mean
  marked and max/mean in the title;
- :func:`touched_histogram`: how many partitions each query touched;
- :func:`sweep_knee`: throughput and p99 against the partition count, the
  overhead knee marked;
- :func:`report_section`: an HTML section for a run or an experiment (empty
  when it has nothing of partitioning), for :mod:`scalelab.report` to include.

Every function takes an optional ``ax`` (or axes) and returns what it drew on;
without one, pyplot makes a figure (shown inline in a notebook).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scalelab.analysis.load import Experiment, Run
from scalelab.analysis.partitioning import (
    SWEEP_PARAM,
    imbalance,
    overhead_knee,
    partition_load,
    partitions_touched,
    sweep_table,
    touched,
    worker_load,
)


def _axes(ax: Axes | None, size: tuple[float, float] = (7.0, 3.6)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1]


def partition_load_bars(
    run: Run, ax: Axes | None = None, by: str = "partition", column: str = "requests"
) -> Axes:
    """``column`` per partition (or per ``worker``) as bars, the mean dashed, max/mean titled."""
    ax = _axes(ax)
    frame = partition_load(run) if by == "partition" else worker_load(run)
    if frame.empty:
        ax.set_title(f"no {by} load recorded")
        return ax
    values = frame[column]
    labels = [str(i) if by == "partition" else str(i).rsplit(":", 1)[-1] for i in frame.index]
    ax.bar(labels, values, color="#4c72b0")
    ax.axhline(values.mean(), color="#c44e52", linestyle="--", label="mean")
    ax.set_xlabel(by if by == "partition" else "worker (port)")
    ax.set_ylabel(column.replace("_", " "))
    ax.set_title(f"{column.replace('_', ' ')} per {by}: max/mean = {imbalance(values):.2f}")
    ax.legend(fontsize="small")
    return ax


def touched_histogram(run: Run, ax: Axes | None = None) -> Axes:
    """How many partitions each query touched, one histogram per request name."""
    ax = _axes(ax)
    per = touched(run)
    if per.empty:
        ax.set_title("no request named its partitions")
        return ax
    top = int(per["partitions"].max())
    bins = [b + 0.5 for b in range(top + 1)]
    for name, group in per.groupby("name"):
        ax.hist(group["partitions"], bins=bins, alpha=0.6, label=str(name))
    ax.set_xlabel("partitions touched by a query")
    ax.set_ylabel("queries")
    ax.set_title("partitions touched per query")
    ax.legend(fontsize="small")
    return ax


def sweep_knee(
    exp: Experiment, axes: Sequence[Axes] | None = None, param: str = SWEEP_PARAM
) -> Sequence[Axes]:
    """Throughput and p99 against ``param`` (the partition count), the knee marked on both."""
    if axes is None:
        import matplotlib.pyplot as plt

        axes = list(plt.subplots(1, 2, figsize=(11.0, 3.8))[1])
    table = sweep_table(exp, param)
    x_col = str(table.columns[0])
    xs = table[x_col].astype(float).to_numpy()
    knee = overhead_knee(table, x_col)
    for ax, column, label in (
        (axes[0], "throughput_rps", "throughput (requests/s)"),
        (axes[1], "p99_ms", "p99 latency (ms)"),
    ):
        ax.plot(xs, table[column].astype(float).to_numpy(), marker="o")
        if knee is not None:
            ax.axvline(float(knee), color="#c44e52", linestyle="--", label=f"knee: {knee}")
            ax.legend(fontsize="small")
        if len(xs) and xs.min() > 0:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{v:g}" for v in xs])
        ax.set_xlabel("partitions")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_title("throughput against partitions")
    axes[1].set_title("p99 against partitions")
    return axes


def _png(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _has_partitions(run: Run) -> bool:
    m = run.metrics
    return not m.empty and bool(m["metric"].eq("scalelab_partition_requests_total").any())


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(border=0, float_format=lambda v: f"{v:,.3g}", na_rep="-")


def report_section(target: Run | Experiment) -> str:
    """An HTML section on partitioning: for a partition-count sweep the knee figure and table,
    for every run with a router the per-partition load and imbalance; empty otherwise."""
    runs = [target] if isinstance(target, Run) else list(target.runs)
    with_router = [r for r in runs if _has_partitions(r)]
    if not with_router:
        return ""
    parts = ["<h2>Partitioning</h2>"]
    if isinstance(target, Experiment) and SWEEP_PARAM in target.swept:
        table = sweep_table(target)
        knee = overhead_knee(table)
        fig = Figure(figsize=(11.0, 3.8))
        sweep_knee(target, list(fig.subplots(1, 2)))
        parts += [
            f"<p>The overhead knee: <b>{html.escape(str(knee))} partitions</b> gave the most "
            "throughput; beyond it Dask's cost per task outweighs the parallelism more "
            "partitions give.</p>",
            _png(fig, "throughput and p99 against partitions"),
            _table(
                table[[table.columns[0], "runs", "requests", "throughput_rps", "p50_ms", "p99_ms"]]
            ),
        ]
    rows = []
    for run in with_router:
        load = partition_load(run)
        workers = worker_load(run)
        touched_by = partitions_touched(run)
        rows.append(
            {
                "run": run.run_id,
                "partitions": len(load),
                "imbalance (max/mean, partitions)": imbalance(load["requests"]),
                "imbalance (max/mean, workers)": imbalance(workers["requests"])
                if not workers.empty
                else np.nan,
                "partitions per query": float(
                    (touched_by["mean_partitions"] * touched_by["requests"]).sum()
                    / touched_by["requests"].sum()
                )
                if not touched_by.empty
                else np.nan,
                "bytes moved by queries": float(load["bytes_moved"].sum()),
            }
        )
    parts.append(_table(pd.DataFrame(rows).set_index("run")))
    if len(with_router) == 1:
        fig = Figure(figsize=(11.0, 3.6))
        left, right = fig.subplots(1, 2)
        partition_load_bars(with_router[0], ax=left)
        touched_histogram(with_router[0], ax=right)
        parts.append(_png(fig, "load per partition and partitions touched"))
    return "\n".join(parts)
