"""Plots of runs and experiments with matplotlib.

Every function takes the data and an optional ``ax`` (or axes) to draw on, and
returns what it drew on. Without ``ax`` a new figure comes from pyplot, which
shows inline in a notebook; the report passes axes of a plain
:class:`~matplotlib.figure.Figure`, so nothing here needs a display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from scalelab.analysis.factorial import FactorialResult
from scalelab.analysis.frames import per_second
from scalelab.analysis.load import Experiment, Run
from scalelab.analysis.percentiles import (
    group_percentiles,
    histogram_arrays,
    histograms_by_label,
    percentiles_from_counts,
    resolve_param,
)
from scalelab.analysis.timeline import IN_FLIGHT, KINDS, fault_windows, resource_series
from scalelab.analysis.usl import USLFit
from scalelab.errors import ScaleLabError

Frames: TypeAlias = Mapping[str, pd.DataFrame] | pd.DataFrame | Run | Sequence[Run] | Experiment
LATENCY_LABEL = "latency (ms)"


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=figsize)
    return new


def _percentile_label(q: float) -> str:
    text = f"{q:.6f}".rstrip("0").rstrip(".")
    return f"{text}%"


def latency_percentiles(
    source: Mapping[str, HdrHistogram] | HdrHistogram | Run | Sequence[Run] | Experiment,
    ax: Axes | None = None,
    tag: str = "intended",
    logy: bool = False,
) -> Axes:
    """The HdrHistogram percentile plot: latency against percentile, one line per label.

    The x axis is 1/(1 − q) on a log scale, so 90 %, 99 %, 99.9 %... are equally
    spaced and the tail gets the room it deserves. Each line stops where the data
    stops (a run of n requests says nothing past the 1 − 1/n percentile).
    """
    ax = _new_axes(ax)
    hists = histograms_by_label(source, tag)
    top = 2.0
    for label, hist in hists.items():
        values, counts = histogram_arrays(hist)
        n = int(counts.sum())
        if n == 0:
            continue
        x = np.unique(np.concatenate([np.logspace(0, np.log10(max(n, 2)), 400), [2.0]]))
        q = 100.0 * (1.0 - 1.0 / x)
        y = percentiles_from_counts(values, counts, np.maximum(q, 1e-9)) / 1000.0
        ax.step(x, y, where="post", label=f"{label} (n={n:,})")
        top = max(top, float(x[-1]))
    ax.set_xscale("log")
    ticks = [2.0] + [10.0**k for k in range(1, int(np.floor(np.log10(top))) + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([_percentile_label(100.0 * (1.0 - 1.0 / t)) for t in ticks])
    ax.set_xlim(1.0, top)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("percentile")
    ax.set_ylabel(LATENCY_LABEL)
    ax.set_title(
        "latency by percentile" if isinstance(source, Mapping) else f"latency by percentile ({tag})"
    )
    ax.grid(True, which="major", alpha=0.3)
    if hists:
        ax.legend(fontsize="small")
    return ax


def latency_cdf(
    source: Mapping[str, HdrHistogram | Sequence[float] | np.ndarray]
    | HdrHistogram
    | Run
    | Sequence[Run]
    | Experiment,
    ax: Axes | None = None,
    tag: str = "intended",
    logx: bool = True,
) -> Axes:
    """The cumulative distribution of latency, one line per label.

    A mapping's values may be histograms or plain latencies in milliseconds.
    """
    ax = _new_axes(ax)
    items: dict[str, Any] = (
        dict(source) if isinstance(source, Mapping) else dict(histograms_by_label(source, tag))
    )
    for label, data in items.items():
        if isinstance(data, HdrHistogram):
            values, counts = histogram_arrays(data)
            xs = values / 1000.0
            cum = np.cumsum(counts).astype(float)
        else:
            xs = np.sort(np.asarray(data, dtype=float))
            cum = np.arange(1, len(xs) + 1, dtype=float)
        if len(xs) == 0:
            continue
        ax.step(xs, cum / cum[-1], where="post", label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(LATENCY_LABEL)
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title("latency CDF")
    ax.grid(True, alpha=0.3)
    if items:
        ax.legend(fontsize="small")
    return ax


def _frames(source: Frames) -> tuple[dict[str, pd.DataFrame], dict[str, Run]]:
    """Per-second frames by label, and the runs they came from (for event marks)."""
    if isinstance(source, pd.DataFrame):
        return {str(source.attrs.get("run_id", "run")): source}, {}
    if isinstance(source, Mapping):
        return dict(source), {}
    runs = (
        [source]
        if isinstance(source, Run)
        else list(source.runs if isinstance(source, Experiment) else source)
    )
    return {r.run_id: per_second(r) for r in runs}, {r.run_id: r for r in runs}


def _mark_events(ax: Axes, frames: dict[str, pd.DataFrame], runs: dict[str, Run]) -> None:
    """Dotted vertical lines at each run's faults and notes (phases are the axis itself)."""
    for label, run in runs.items():
        ev = run.events
        t0 = frames[label].attrs.get("t0")
        if t0 is None:
            continue
        if run.measure_from is not None:
            ev = pd.concat(
                [
                    ev,
                    pd.DataFrame(
                        {"t": [run.measure_from], "kind": ["note"], "name": ["warm-up end"]}
                    ),
                ]
            )
        if ev.empty:
            continue
        for _, row in ev[ev["kind"] != "phase"].iterrows():
            ax.axvline(float(row["t"]) - t0, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                str(row["name"]),
                (float(row["t"]) - t0, 1.0),
                xycoords=("data", "axes fraction"),
                fontsize="x-small",
                rotation=90,
                va="top",
                ha="right",
            )


def throughput_over_time(
    source: Frames, ax: Axes | None = None, column: str = "throughput_rps"
) -> Axes:
    """Requests per second over time (from :func:`~scalelab.analysis.per_second` frames or runs)."""
    ax = _new_axes(ax)
    frames, runs = _frames(source)
    for label, ps in frames.items():
        if len(ps):
            t = ps["t"].to_numpy(dtype=float)
            y = ps[column].to_numpy(dtype=float)
            width = float(t[1] - t[0]) if len(t) > 1 else 1.0
            # repeat the last value so the last bin is drawn as wide as the others
            ax.plot(
                np.append(t, t[-1] + width),
                np.append(y, y[-1]),
                label=label,
                drawstyle="steps-post",
            )
    _mark_events(ax, frames, runs)
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel("requests/s" if column.endswith("rps") else column)
    ax.set_title("throughput over time")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if frames:
        ax.legend(fontsize="small")
    return ax


def latency_over_time(
    source: Frames,
    ax: Axes | None = None,
    columns: Sequence[str] = ("p50_ms", "p99_ms"),
    logy: bool = False,
) -> Axes:
    """Latency percentiles per second over time: one colour per run, one line style per column."""
    ax = _new_axes(ax)
    frames, runs = _frames(source)
    styles = ["-", "--", ":", "-."]
    for i, (label, ps) in enumerate(frames.items()):
        if not len(ps):
            continue
        color = f"C{i % 10}"
        for j, col in enumerate(columns):
            ax.plot(
                ps["t"],
                ps[col],
                color=color,
                linestyle=styles[j % len(styles)],
                label=f"{label} {col.removesuffix('_ms')}",
            )
    _mark_events(ax, frames, runs)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("time since load start (s)")
    ax.set_ylabel(LATENCY_LABEL)
    ax.set_title("latency over time")
    ax.grid(True, alpha=0.3)
    if frames:
        ax.legend(fontsize="small")
    return ax


METRIC_LABELS: dict[str, str] = {
    "throughput_rps": "throughput (requests/s)",
    "ok_throughput_rps": "successful requests/s",
    "mean_ms": "mean latency (ms)",
    "p50_ms": "median latency (ms)",
    "p90_ms": "p90 latency (ms)",
    "p99_ms": "p99 latency (ms)",
    "p999_ms": "p99.9 latency (ms)",
    "max_ms": "largest latency (ms)",
    "actual_p50_ms": "median latency from send (ms)",
    "actual_p99_ms": "p99 latency from send (ms)",
    "error_rate": "errors (% of requests)",
    "requests": "requests",
    "errors": "errors",
    "cache_hit_ratio": "cache hit ratio",
    "duration_s": "measured time (s)",
}
"""Words, with units, for the summary figures on an axis (never the raw column name)."""

PARAM_LABELS: dict[str, str] = {
    "service.executor.kind": "executor",
    "service.executor.max_batch": "largest batch (requests)",
    "service.executor.max_wait_ms": "longest batch wait (ms)",
    "service.cluster.workers": "Dask workers",
    "service.cluster.threads_per_worker": "threads per Dask worker",
    "service.admission.max_in_flight": "admission limit (requests in flight)",
    "service.cache.policy": "cache policy",
    "service.cache.size": "cache size (entries)",
    "service.cache.ttl_s": "cache TTL (s)",
    "service.cache.tier": "cache tier",
    "service.faults.error_rate": "injected error rate",
    "load.mode": "load model",
    "load.users": "concurrent users",
    "load.rate": "arrival rate (requests/s)",
    "load.arrival": "arrivals",
    "load.processes": "Locust processes",
    "scenario.endpoint": "endpoint",
    "scenario.units": "CPU work per request (units)",
    "scenario.io_ms": "I/O per request (ms)",
}
"""Words, with units, for the spec fields experiments sweep most."""

_UNIT_SUFFIXES = (("_ms", "ms"), ("_rps", "requests/s"), ("_s", "s"), ("_bytes", "bytes"))


def label_of(name: str) -> str:
    """A summary figure or spec field in words with its unit: ``p99_ms`` is ``p99 latency (ms)``.

    Known names come from :data:`METRIC_LABELS` and :data:`PARAM_LABELS`; any
    other takes its last dotted part, with a unit suffix (``_ms``, ``_s``,
    ``_rps``) turned into a unit in brackets.
    """
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    if name in PARAM_LABELS:
        return PARAM_LABELS[name]
    last = name.rsplit(".", 1)[-1]
    for suffix, unit in _UNIT_SUFFIXES:
        if last.endswith(suffix) and len(last) > len(suffix):
            return f"{last[: -len(suffix)].replace('_', ' ')} ({unit})"
    return last.replace("_", " ")


def _categories(values: pd.Series) -> list[str] | None:
    """None when every parameter value is a number; else the values as categories, in order."""
    if pd.to_numeric(values, errors="coerce").notna().all():
        return None
    return list(dict.fromkeys(values.astype(str)))


def _positions(values: pd.Series, cats: list[str] | None) -> np.ndarray:
    """x positions for parameter values: numbers as they are, categories by their index."""
    if cats is None:
        return pd.to_numeric(values).to_numpy(dtype=float)
    return np.array([cats.index(str(v)) for v in values], dtype=float)


def _series_key(row: pd.Series, hue: list[str]) -> str:
    return " ".join(f"{h.rsplit('.', 1)[-1]}={row[h]}" for h in hue)


def _centre(
    metric: str,
    rows: pd.DataFrame,
    x: np.ndarray,
    y: np.ndarray,
    grouped: pd.DataFrame | None,
    gx: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each group's value: merged-histogram percentile for latency, mean over repeats else.

    None for latency without the histograms (percentiles cannot be averaged).
    """
    if metric.endswith("_ms"):
        if grouped is None or gx is None or metric not in grouped.columns:
            return None
        return gx, grouped[metric].to_numpy(dtype=float)
    if metric == "error_rate" and grouped is not None and gx is not None:
        return gx, grouped["error_rate"].to_numpy(dtype=float)  # pooled over the repeats
    means = pd.DataFrame({"x": x, "y": y}).groupby("x")["y"].mean()
    return means.index.to_numpy(dtype=float), means.to_numpy(dtype=float)


def compare_runs(
    data: pd.DataFrame | Experiment,
    param: str,
    metrics: Sequence[str] = ("p50_ms", "p99_ms", "throughput_rps"),
    ax: Axes | Sequence[Axes] | None = None,
    hue: str | Sequence[str] | None = None,
) -> Figure:
    """One panel per metric against parameter ``param``, with the spread of the repeats.

    A numeric parameter (users, rate, sizes) is drawn as lines through each
    group; a categorical one (an executor kind, a policy) as bars, since a
    line between categories means nothing. Each group's value
    is, for latency, the percentile of its repeats' merged histograms (given an
    :class:`~scalelab.analysis.Experiment`; from only a table latency shows
    the runs alone, since percentiles cannot be averaged), and otherwise the
    mean over repeats; a vertical bar spans the repeats' lowest to highest
    value, and each repeat is a faint dot. Runs are split into one series per
    value of ``hue`` (by default, for an experiment, every other swept
    parameter). Axes are labelled in words with units (:func:`label_of`);
    ``error_rate`` is drawn in percent.
    """
    exp = data if isinstance(data, Experiment) else None
    table = exp.table if exp is not None else data
    assert isinstance(table, pd.DataFrame)
    col = resolve_param(exp, param) if exp is not None else param
    if col not in table.columns:
        raise ScaleLabError(
            f"compare_runs: no column {param!r}; columns are: {', '.join(map(str, table.columns))}"
        )
    if hue is None:
        hues = [s for s in exp.swept if s != col] if exp is not None else []
    else:
        names = [hue] if isinstance(hue, str) else list(hue)
        hues = [resolve_param(exp, h) if exp is not None else h for h in names]
    if ax is None:
        import matplotlib.pyplot as plt

        fig, axes_arr = plt.subplots(
            1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False
        )
        axes = list(axes_arr[0])
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) < len(metrics):
            raise ScaleLabError(f"compare_runs: {len(metrics)} metrics need as many axes")
        fig_or_none = axes[0].get_figure()
        assert isinstance(fig_or_none, Figure)
        fig = fig_or_none
    cats = _categories(table[col])
    series: list[str] = [_series_key(row, hues) for _, row in table.iterrows()]
    keys = list(dict.fromkeys(series))
    grouped = group_percentiles(exp, by=[col, *hues]) if exp is not None else None
    gseries: list[str] | None = (
        [_series_key(row, hues) for _, row in grouped.iterrows()] if grouped is not None else None
    )
    width = 0.6 / max(len(keys), 1)
    repeats = table.groupby([col, *hues], dropna=False).size().max() if len(table) else 0
    for a, metric in zip(axes, metrics, strict=False):
        if metric not in table.columns:
            raise ScaleLabError(f"compare_runs: no metric {metric!r} in the runs table")
        scale = 100.0 if metric == "error_rate" else 1.0
        for i, key in enumerate(keys):
            color = f"C{i % 10}"
            rows = table[np.asarray(series) == key]
            dodge = (i - (len(keys) - 1) / 2) * width if cats is not None else 0.0
            x = _positions(rows[col], cats) + dodge
            y = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float) * scale
            name = key or "runs"
            dots = "black" if cats is not None else color
            a.scatter(x, y, alpha=0.45, zorder=3, color=dots, s=12, linewidths=0)
            g = gx = None
            if grouped is not None and gseries is not None:
                g = grouped[np.asarray(gseries) == key]
                gx = _positions(g[col], cats) + dodge
            centre = _centre(metric, rows, x, y / scale, g, gx)
            if repeats > 1 and len(x):
                spread = pd.DataFrame({"x": x, "y": y}).groupby("x")["y"].agg(["min", "max"])
                a.vlines(
                    spread.index.to_numpy(dtype=float),
                    spread["min"].to_numpy(dtype=float),
                    spread["max"].to_numpy(dtype=float),
                    color="black" if cats is not None else color,
                    linewidth=1.5,
                    alpha=0.7,
                    zorder=3,
                )
            if centre is not None and cats is not None:
                a.bar(
                    centre[0], centre[1] * scale, width * 0.9, color=color, alpha=0.75, label=name
                )
            elif centre is not None:
                order = np.argsort(centre[0])
                a.plot(
                    centre[0][order],
                    centre[1][order] * scale,
                    marker="o",
                    color=color,
                    label=name,
                    zorder=4,
                )
            elif i == 0 or key:
                a.scatter([], [], color=color, label=name)
        if cats is not None:
            a.set_xticks(range(len(cats)))
            a.set_xticklabels(cats)
            a.set_xlim(-0.6, len(cats) - 0.4)
        a.set_xlabel(label_of(col))
        a.set_ylabel(label_of(metric))
        a.set_title(label_of(metric).split(" (", 1)[0])
        a.set_ylim(bottom=0)
        a.grid(True, axis="y" if cats is not None else "both", alpha=0.3)
        if keys != [""]:
            a.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def _fault_color(name: str) -> str:
    return {"stall": "tab:red", "set": "tab:orange"}.get(name, "tab:purple")


def _bands(axes: Sequence[Axes], run: Run, t0: float | None) -> None:
    """Shade the warm-up and every fault window on each of ``axes``; name them on the first."""
    spans: list[tuple[float, float, str, str, str]] = []
    if run.measure_from is not None and t0 is not None:
        spans.append((0.0, run.measure_from - t0, "warm-up", "grey", "left"))
    for _, f in fault_windows(run).iterrows():
        end = max(float(f["end"]), float(f["start"]) + 0.05)  # an instant still shows
        spans.append(
            (float(f["start"]), end, str(f["label"]), _fault_color(str(f["name"])), "left")
        )
    for a in axes:
        for start, end, _, color, _ in spans:
            a.axvspan(start, end, color=color, alpha=0.15 if color != "grey" else 0.1, lw=0)
    for start, _, label, color, _ in spans:
        axes[0].annotate(
            label,
            (start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            fontsize="x-small",
            va="top",
            color="black" if color == "grey" else color,
        )


def _steps(a: Axes, t: np.ndarray, y: np.ndarray, width: float, **kw: Any) -> None:
    """A per-bin series as steps, its last bin drawn as wide as the others."""
    if len(t):
        a.plot(np.append(t, t[-1] + width), np.append(y, y[-1]), drawstyle="steps-post", **kw)


def run_timeline(
    run: Run, fig: Figure | None = None, bin_s: float = 1.0, title: bool = True
) -> Figure:
    """One run over time, panels sharing the time axis, faults shaded across all of them.

    From the client's records: throughput (answered ok, and errors) and latency
    (median and p99, from the intended start), per ``bin_s``. Under them, from
    the service's and Dask's ``/metrics`` (:func:`~scalelab.analysis.timeline.resource_series`):
    CPU of the service, scheduler and each worker; requests and Dask tasks in
    flight, with Little's law λW over the measured window; Dask tasks per
    second. A panel whose series the run did not scrape is left out. Time is
    seconds since the first request.
    """
    ps = per_second(run, bin_s)
    t0 = ps.attrs.get("t0")
    res = resource_series(run)
    kinds = [k for k in KINDS if len(res) and (res["kind"] == k).any()]
    rows = 2 + len(kinds)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(10.0, 1.8 * rows + 0.8))
    axes_arr = fig.subplots(rows, 1, sharex=True, squeeze=False)
    axes: list[Axes] = list(axes_arr[:, 0])
    t = ps["t"].to_numpy(dtype=float)
    top, lat = axes[0], axes[1]
    _steps(top, t, ps["ok_rps"].to_numpy(dtype=float), bin_s, color="C0", label="answered ok")
    errors = ps["errors"].to_numpy(dtype=float) / bin_s
    if errors.any():
        _steps(top, t, errors, bin_s, color="tab:red", label="errors")
    top.set_ylabel("requests/s")
    top.set_ylim(bottom=0)
    for col, name, style in (("p50_ms", "median", "-"), ("p99_ms", "p99", "--")):
        if col in ps.columns:
            lat.plot(t + bin_s / 2, ps[col], linestyle=style, marker=".", label=name)
    lat.set_ylabel(LATENCY_LABEL)
    lat.set_ylim(bottom=0)
    for a, kind in zip(axes[2:], kinds, strict=True):
        part = res[res["kind"] == kind]
        for i, (series, points) in enumerate(part.groupby("series", sort=False)):
            a.plot(points["t"], points["value"], marker=".", color=f"C{i % 10}", label=str(series))
        a.set_ylabel(KINDS[kind])
        a.set_ylim(bottom=0)
        if kind == IN_FLIGHT and t0 is not None:
            _little_line(a, run, t0)
    if len(t):
        right = float(t[-1]) + bin_s
        left = min(0.0, float(res["t"].min())) if len(res) else 0.0
        axes[-1].set_xlim(max(left, -2.0), right + 0.5)
    _bands(axes, run, t0)
    for a in axes:
        a.grid(True, alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.005, 1.0))
    axes[-1].set_xlabel("time since the first request (s)")
    if title:
        fig.suptitle(f"{run.label} — over time", fontsize="medium")
    # Fixed margins (in inches) instead of tight_layout: as good here, and far quicker.
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=0.85 / w,
        right=1.0 - 1.95 / w,
        bottom=0.5 / h,
        top=1.0 - (0.4 if title else 0.1) / h,
        hspace=0.12,
    )
    return fig


def _little_line(a: Axes, run: Run, t0: float) -> None:
    """Little's law L = λW over the measured window, as a dashed line beside the measured count."""
    from scalelab.analysis.queueing import little_law

    try:
        ll = little_law(run, trim_s=1.0)
    except ScaleLabError:
        return
    if not np.isfinite(ll.predicted_in_flight):
        return
    a.hlines(
        ll.predicted_in_flight,
        ll.window[0] - t0,
        ll.window[1] - t0,
        colors="black",
        linestyles="--",
        linewidth=1.2,
        zorder=5,
        label=f"Little's law λW = {ll.predicted_in_flight:.1f}",
    )


def usl_plot(
    fit: USLFit,
    concurrency: Sequence[float] | np.ndarray,
    throughput: Sequence[float] | np.ndarray,
    ax: Axes | None = None,
) -> Axes:
    """Measured throughput against concurrency with the USL curve, linear scaling and the peak."""
    ax = _new_axes(ax)
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    right = float(n.max()) if len(n) else 1.0
    if np.isfinite(fit.peak_concurrency) and fit.peak_concurrency < 3 * right:
        right = max(right, 1.2 * fit.peak_concurrency)
    grid = np.linspace(1.0, max(right, 2.0), 300)
    ax.scatter(n, x, zorder=3, label="measured")
    ax.plot(
        grid,
        fit.predict(grid),
        label=f"USL fit σ={fit.sigma:.3g} κ={fit.kappa:.3g}",
    )
    ideal = fit.lambda_ * grid
    top = max(float(np.nanmax(x)) if len(x) else 0.0, float(fit.predict(grid).max())) * 1.15
    ax.plot(grid, np.minimum(ideal, top), linestyle="--", color="grey", label="linear λN")
    if np.isfinite(fit.peak_concurrency) and fit.peak_concurrency <= grid[-1]:
        ax.axvline(fit.peak_concurrency, linestyle=":", color="C3")
        ax.annotate(
            f"N*={fit.peak_concurrency:.1f}",
            (fit.peak_concurrency, fit.peak_throughput),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize="small",
        )
    ax.set_ylim(0, top)
    ax.set_xlabel("concurrency N")
    ax.set_ylabel("throughput (requests/s)")
    ax.set_title("Universal Scalability Law")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


# --- caching ------------------------------------------------------------------------------


def _caching_runs(source: Run | Sequence[Run] | Experiment) -> list[Run]:
    if isinstance(source, Run):
        return [source]
    if isinstance(source, Experiment):
        return list(source.runs)
    return list(source)


def hit_ratio_over_time(
    source: Run | Sequence[Run] | Experiment, ax: Axes | None = None, bin_s: float = 1.0
) -> Axes:
    """The share of keyed reads answered ``hit`` per time bin, one line per run.

    A cold cache starts at zero and climbs as the popular keys arrive.
    """
    from scalelab.analysis.caching import hit_ratio_over_time as frame_of

    ax = _new_axes(ax)
    for run in _caching_runs(source):
        frame = frame_of(run, bin_s)
        ax.plot(frame["t"] + bin_s, frame["hit_ratio"], marker=".", label=run.label)
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("hit ratio")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def hit_ratio_vs_size(
    table: pd.DataFrame,
    ax: Axes | None = None,
    popularity: Sequence[float] | np.ndarray | None = None,
    hue: str = "policy",
    size: str = "size",
    measured: str = "hit_ratio",
) -> Axes:
    """Measured hit ratio against cache size (one line per ``hue``), and Che's LRU curve.

    ``table`` is :func:`scalelab.analysis.caching.caching_table`'s; with
    ``popularity`` (the key probabilities) Che's prediction is drawn as a
    smooth curve, else as the table's ``che_lru_hit_ratio`` points.
    """
    from scalelab.analysis.caching import che_hit_ratio

    ax = _new_axes(ax)
    groups = table.groupby(hue, sort=True) if hue in table.columns else [("runs", table)]
    for name, group in groups:
        g = pd.DataFrame(group.groupby(size, as_index=False)[measured].mean()).sort_values(size)
        ax.plot(g[size], g[measured], marker="o", label=f"{hue}={name}")
    if popularity is not None and len(table):
        top = float(table[size].max())
        sizes = np.unique(np.linspace(1, top * 1.1, 60).round())
        ax.plot(
            sizes,
            [che_hit_ratio(popularity, s) for s in sizes],
            color="black",
            linestyle="--",
            label="Che (LRU)",
        )
    elif "che_lru_hit_ratio" in table.columns:
        che = pd.DataFrame(table.groupby(size, as_index=False)["che_lru_hit_ratio"].mean())
        che = che.sort_values(size)
        ax.plot(che[size], che["che_lru_hit_ratio"], "k--x", label="Che (LRU)")
    ax.set_xlabel("cache size (entries)")
    ax.set_ylabel("hit ratio")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def latency_by_answer(
    source: Run | Sequence[Run] | Experiment,
    ax: Axes | None = None,
    columns: Sequence[str] = ("p50_ms", "p99_ms"),
    logy: bool = True,
) -> Axes:
    """Latency percentiles of keyed reads by ``X-Cache`` answer (hit, stale, coalesced, miss)."""
    from scalelab.analysis.caching import latency_by_answer as table_of

    ax = _new_axes(ax)
    runs = _caching_runs(source)
    table = table_of(runs)
    table = table[table["requests"] > 0]
    answers = [a for a in ("hit", "stale", "coalesced", "miss") if a in set(table["answer"])]
    labels = [(run.run_id, run.label) for run in runs]
    width = 0.8 / max(1, len(labels) * len(columns))
    x = np.arange(len(answers))
    k = 0
    for run_id, label in labels:
        rows = table[table["run_id"] == run_id].set_index("answer")
        for col in columns:
            values = [rows[col].get(a, np.nan) if a in rows.index else np.nan for a in answers]
            ax.bar(x + k * width, values, width, label=f"{label} {col}")
            k += 1
    ax.set_xticks(x + width * (k - 1) / 2, answers)
    ax.set_ylabel(LATENCY_LABEL)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def origin_calls_over_time(
    source: Run | Sequence[Run] | Experiment, ax: Axes | None = None
) -> Axes:
    """Computations at the origin (Dask) per second, from the service's counter, per run."""
    from scalelab.analysis.caching import origin_calls_per_second

    ax = _new_axes(ax)
    for run in _caching_runs(source):
        frame = origin_calls_per_second(run)
        ax.plot(frame["t"], frame["calls_per_s"], marker=".", label=run.label)
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel("origin calls per second")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def staleness_vs_ttl(
    table: pd.DataFrame,
    ax: Axes | None = None,
    ttl: str = "ttl_s",
    predicted: Sequence[float] | None = None,
) -> Axes:
    """Share of stale reads (left axis) and hit ratio (right axis) against the TTL.

    ``predicted`` draws a predicted stale share at the same TTLs (for example
    from a write rate, as lab 02 derives).
    """
    ax = _new_axes(ax)
    t = table.sort_values(ttl)
    ax.plot(t[ttl], t["stale_share"], "o-", color="tab:red", label="stale reads (measured)")
    if predicted is not None:
        ax.plot(t[ttl], list(predicted), "x--", color="tab:red", label="stale reads (predicted)")
    ax.set_xlabel("TTL (s)")
    ax.set_ylabel("share of reads that were stale", color="tab:red")
    ax.set_ylim(0, max(0.05, float(np.nanmax(t["stale_share"])) * 1.2 if len(t) else 1.0))
    right = ax.twinx()
    right.plot(t[ttl], t["hit_ratio"], "s-", color="tab:blue", label="hit ratio")
    right.set_ylabel("hit ratio", color="tab:blue")
    right.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return ax


# --- design of experiments ----------------------------------------------------------------


def factorial_effects(
    result: FactorialResult, axes: Sequence[Axes] | None = None, unit: str = ""
) -> Sequence[Axes]:
    """A 2^k·r design at a glance: the allocation of variation and each effect with its interval.

    Left: the share of the total variation (%) that each factor, each
    interaction and the experimental error explain. Right: each effect's
    estimate q (half the change from the factor's low to its high level, in
    the response's ``unit``) with its confidence interval; an interval that
    crosses zero marks an effect the repeats cannot tell from noise.
    """
    if axes is None:
        import matplotlib.pyplot as plt

        _, pair = plt.subplots(1, 2, figsize=(12.0, 0.5 * len(result.effects) + 2.5))
        axes = list(pair)
    left, right = axes[0], axes[1]
    alloc = result.allocation().iloc[::-1]
    colours = ["grey" if e == "error" else "C0" for e in alloc["effect"]]
    left.barh(alloc["effect"], 100.0 * alloc["share"], color=colours)
    for y, share in enumerate(alloc["share"]):
        left.annotate(
            f"{100 * share:.1f} %",
            (100.0 * share, y),
            xytext=(3, -3),
            textcoords="offset points",
            fontsize="small",
        )
    left.set_xlabel("share of the total variation (%)")
    left.set_ylabel("effect")
    left.set_xlim(0, 110)
    left.set_title(f"Allocation of variation of {result.response}")
    left.grid(True, axis="x", alpha=0.3)
    table = result.table().iloc[::-1]
    rows = np.arange(len(table))
    est = table["estimate"].to_numpy(dtype=float)
    err = np.vstack([est - table["ci_low"].to_numpy(), table["ci_high"].to_numpy() - est])
    right.errorbar(est, rows, xerr=err, fmt="o", capsize=4)
    right.axvline(0.0, color="grey", linestyle=":")
    right.set_yticks(rows, table["effect"].tolist())
    suffix = f" ({unit})" if unit else ""
    right.set_xlabel(f"effect q{suffix}, {result.confidence:.0%} interval")
    right.set_ylabel("effect")
    right.set_title(f"Effects on {result.response} (r = {result.replications})")
    right.grid(True, axis="x", alpha=0.3)
    return axes
