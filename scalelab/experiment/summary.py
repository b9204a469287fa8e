"""A run's headline figures (``summary.json``) from its HDR log and its per-request records.

Percentiles come from HdrHistograms, never from averaging: the ``intended`` tag
(latency from each request's intended start, coordinated-omission corrected) gives
``p50_ms`` ... ``max_ms``, the ``actual`` tag gives ``actual_p50_ms`` and
``actual_p99_ms``. When a warm-up is excluded, histograms are rebuilt from the
requests that started after it, with the same precision as ``latency.hdr``.

What is counted follows :mod:`scalelab.analysis.definitions`, as every other
consumer of a run does: ``requests``, ``errors``, throughput and latencies are
those of requests sent; arrivals the open loop dropped are counted apart
(``dropped``). Runs with reads answered with ``X-Cache`` also get
``cache_reads``, ``cache_hit_ratio`` (hits over reads), ``cache_served_ratio``
(hits and coalesced reads over reads) and ``origin_calls`` (the service's
counter over the same window). docs/results-format.md defines each figure.

A steady-state hypothesis (``[slo]``) is checked over windows of the measured
requests, each request placed by its intended start: without faults, the whole
measured window (``overall``); with faults, the requests before the first fault
(``before``) and those from ``recovery_s`` after the last fault ended
(``after``), which must both meet every limit. ``overall`` is always reported,
and judged only when there are no faults. ``summary.json`` gets ``slo`` (for
each limit: ``limit``, the figure in each window, ``checked`` and ``pass``) and
``slo_pass``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from scalelab import hdr
from scalelab.analysis.definitions import (
    HIT_ANSWERS,
    ORIGIN_CALLS_METRIC,
    SERVED_ANSWERS,
    answer_share,
    counter_increase,
    read_mask,
    sent_mask,
)
from scalelab.analysis.percentiles import hist_mean_ms
from scalelab.experiment.steady_state import steady_state
from scalelab.loadgen.records import histogram_of

if TYPE_CHECKING:
    from scalelab.experiment.spec import SloSpec

Records = dict[str, list[Any]]

PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}
FIGURES = (
    "requests",
    "errors",
    "error_rate",
    "throughput_rps",
    "ok_throughput_rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "mean_ms",
    "actual_p50_ms",
    "actual_p99_ms",
    "duration_s",
    "dropped",
)
OPTIONAL_FIGURES = (
    "late",
    "cache_reads",
    "cache_hit_ratio",
    "cache_served_ratio",
    "origin_calls",
    "slo_pass",
    "timeouts",
    "goodput_rps",
    "retry_amplification",
    "time_to_detect_s",
    "time_to_recover_s",
)
"""Figures a run has only when they apply (an open loop, reads through a cache, an SLO,
faults)."""


def _clean(value: Any) -> Any:
    """NaN and infinities become ``None`` so that summary.json stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_requests(path: Path, measure_from: float | None) -> Records | None:
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    wanted = ["intended_start", "start", "latency_us", "latency_intended_us", "ok", "method"]
    wanted.append("cache")
    table = pq.read_table(path)
    present = [c for c in wanted if c in table.column_names]
    data: dict[str, list[Any]] = {c: table.column(c).to_pylist() for c in present}
    if measure_from is not None and "intended_start" in data:
        keep = [i for i, t in enumerate(data["intended_start"]) if t >= measure_from]
        data = {c: [v[i] for i in keep] for c, v in data.items()}
    return data


def first_intended_start(path: Path) -> float | None:
    """The earliest intended start in a ``requests.parquet`` (None when empty or absent)."""
    if not path.is_file():
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=["intended_start"]).column("intended_start")
    if len(column) == 0:
        return None
    first = pc.min(column).as_py()
    return float(first) if first is not None else None


def _split_sent(records: Records) -> tuple[Records, int]:
    """The records of requests sent, and how many rows were the open loop's drops."""
    methods = records.get("method")
    if not methods:
        return records, 0
    keep = sent_mask(methods)
    if keep.all():
        return records, 0
    sent = {c: [v for v, k in zip(values, keep, strict=True) if k] for c, values in records.items()}
    return sent, int(len(keep) - keep.sum())


def _reads(records: Records) -> list[str]:
    """The ``X-Cache`` answers of the reads among ``records``."""
    caches = records.get("cache") or []
    methods = records.get("method") or []
    if not caches or not methods:
        return []
    mask = read_mask(methods, caches)
    return [c for c, is_read in zip(caches, mask, strict=True) if is_read]


def cache_hit_ratio(records: Records) -> float | None:
    """Share of reads (``GET`` answered with ``X-Cache``) answered ``hit`` (None without any)."""
    reads = _reads(records)
    return answer_share(reads, HIT_ANSWERS) if reads else None


def cache_figures(records: Records) -> dict[str, Any]:
    """``cache_reads``, ``cache_hit_ratio`` and ``cache_served_ratio`` (empty without reads)."""
    reads = _reads(records)
    if not reads:
        return {}
    return {
        "cache_reads": len(reads),
        "cache_hit_ratio": answer_share(reads, HIT_ANSWERS),
        "cache_served_ratio": answer_share(reads, SERVED_ANSWERS),
    }


def origin_calls(metrics_path: Path, start: float, end: float) -> float | None:
    """Computations at the origin over ``[start, end]``, from ``metrics.parquet`` (None without)."""
    if not metrics_path.is_file():
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(metrics_path, columns=["t", "source", "metric", "value"])
    mask = pc.and_(
        pc.equal(table["source"], "service"), pc.equal(table["metric"], ORIGIN_CALLS_METRIC)
    )
    rows = table.filter(mask)
    if rows.num_rows == 0:
        return None
    per_scrape: dict[float, float] = {}
    for t, v in zip(rows["t"].to_pylist(), rows["value"].to_pylist(), strict=True):
        per_scrape[t] = per_scrape.get(t, 0.0) + v
    return counter_increase(per_scrape.keys(), per_scrape.values(), start, end)


def _late(run: Path, records: Records) -> int | None:
    """Requests sent more than the open loop's ``late_ms`` after their intended start.

    None for a closed loop, or without ``loadgen.json``.
    """
    try:
        info = json.loads((run / "loadgen.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("load_mode") != "open":
        return None
    late_s = float(info.get("late_ms") or 0.0) / 1000.0
    starts, intended = records.get("start") or [], records.get("intended_start") or []
    return sum(1 for s, i in zip(starts, intended, strict=True) if s - i > late_s)


def _hist_of(values: list[Any]) -> HdrHistogram:
    return histogram_of([hdr.clamp_us(v) for v in values])


def compute_summary(
    run_dir: str | Path,
    *,
    run_id: str = "",
    params: dict[str, Any] | None = None,
    status: str = "ok",
    measure_from: float | None = None,
    slo: SloSpec | None = None,
    fault_window: tuple[float, float] | None = None,
    fault_spans: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The figures of ``summary.json`` for a run directory (missing inputs give ``None``).

    ``measure_from`` (a Unix time) leaves out requests whose intended start is
    earlier: the warm-up. With ``slo``, ``slo`` and ``slo_pass`` judge it, over
    the windows before and after ``fault_window`` (Unix times from the first
    fault to the end of the last) when given, else over the whole measured run.
    """
    run = Path(run_dir)
    rows = _read_requests(run / "requests.parquet", measure_from)
    records, dropped = _split_sent(rows) if rows is not None else (None, None)
    hists: dict[str, HdrHistogram] = {}
    if measure_from is not None and records is not None:
        column = "latency_intended_us" if "latency_intended_us" in records else "latency_us"
        hists["intended"] = _hist_of(records.get(column) or [])
        hists["actual"] = _hist_of(records.get("latency_us") or [])
    elif (run / "latency.hdr").is_file():
        hists = hdr.read_log(run / "latency.hdr")
    intended = hists.get("intended") or hists.get("actual")
    actual = hists.get("actual") or intended

    summary: dict[str, Any] = dict.fromkeys(FIGURES)
    requests: int | None = None
    errors: int | None = None
    duration: float | None = None
    window: tuple[float, float] | None = None
    if records is not None and "ok" in records:
        requests = len(records["ok"])
        errors = sum(1 for ok in records["ok"] if not ok)
        if requests and "start" in records and "latency_us" in records:
            first = min(records.get("intended_start") or records["start"])
            last = max(
                s + lat / 1e6
                for s, lat in zip(records["start"], records["latency_us"], strict=True)
            )
            duration = max(last - first, 1e-9)
            window = (first if measure_from is None else measure_from, last)
    elif intended is not None:
        requests = int(intended.get_total_count())

    summary["requests"] = requests
    summary["errors"] = errors
    summary["dropped"] = dropped
    if requests:
        summary["error_rate"] = errors / requests if errors is not None else None
        if duration:
            summary["throughput_rps"] = requests / duration
            if errors is not None:
                summary["ok_throughput_rps"] = (requests - errors) / duration
    elif requests == 0:
        summary["error_rate"] = 0.0
        summary["throughput_rps"] = 0.0
        summary["ok_throughput_rps"] = 0.0
    summary["duration_s"] = duration

    if intended is not None and intended.get_total_count():
        pct = hdr.percentiles_ms(intended, PERCENTILES.values())
        for key, q in PERCENTILES.items():
            summary[key] = pct[q]
        summary["max_ms"] = intended.get_max_value() / 1000.0
        summary["mean_ms"] = hist_mean_ms(intended)
    if actual is not None and actual.get_total_count():
        pct = hdr.percentiles_ms(actual, (50.0, 99.0))
        summary["actual_p50_ms"] = pct[50.0]
        summary["actual_p99_ms"] = pct[99.0]

    if records is not None:
        late = _late(run, records)
        if late is not None:
            summary["late"] = late
        cache = cache_figures(records)
        if cache and window is not None:
            cache["origin_calls"] = origin_calls(run / "metrics.parquet", *window)
        summary.update(cache)

    if slo is not None:
        verdicts = slo_verdicts(records or {}, slo, fault_window)
        summary["slo"] = verdicts
        summary["slo_pass"] = all(v["pass"] for v in verdicts.values())
    # Phases around each fault, time to detect and recover, goodput, amplification.
    summary.update(steady_state(run, measure_from, slo, fault_spans, summary.get("slo")))

    summary["params"] = dict(params or {})
    summary["run_id"] = run_id
    summary["status"] = status
    return {k: _clean(v) for k, v in summary.items()}


def window_figures(
    records: dict[str, list[Any]], low: float | None = None, high: float | None = None
) -> dict[str, Any]:
    """``summary.json``'s figures over the requests whose intended start is at ``low`` or
    later and that had their answer before ``high``.

    A request still in flight at ``high`` (a fault's start) met the fault, so it
    does not belong to the steady state before it. Throughput divides by the
    window's span: from ``low`` (or the first intended start) to ``high`` (or the
    last response). Only requests sent count (the open loop's drops are no requests).
    """
    records, _ = _split_sent(records)
    intended = records.get("intended_start") or records.get("start") or []
    ends: list[float] = []
    if high is not None:
        starts = records.get("start") or intended
        latencies = records.get("latency_us") or [0] * len(starts)
        ends = [s + lat / 1e6 for s, lat in zip(starts, latencies, strict=True)]
    rows = [
        i
        for i, t in enumerate(intended)
        if (low is None or t >= low) and (high is None or ends[i] < high)
    ]
    out: dict[str, Any] = {"requests": len(rows)}
    if not rows:
        return out
    part = {c: [v[i] for i in rows] for c, v in records.items()}
    errors = sum(1 for ok in part.get("ok", []) if not ok)
    out["errors"] = errors
    out["error_rate"] = errors / len(rows)
    first = low if low is not None else min(part.get("intended_start") or part["start"])
    if high is not None:
        last = high
    else:
        last = max(s + lat / 1e6 for s, lat in zip(part["start"], part["latency_us"], strict=True))
    out["throughput_rps"] = len(rows) / max(last - first, 1e-9)
    column = "latency_intended_us" if "latency_intended_us" in part else "latency_us"
    hist = _hist_of(part.get(column) or [])
    if hist.get_total_count():
        pct = hdr.percentiles_ms(hist, PERCENTILES.values())
        for key, q in PERCENTILES.items():
            out[key] = pct[q]
        out["max_ms"] = hist.get_max_value() / 1000.0
    return out


def _meets(name: str, value: float | None, limit: float) -> bool:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return False
    return value >= limit if name == "min_throughput_rps" else value <= limit


def slo_verdicts(
    records: dict[str, list[Any]],
    slo: SloSpec,
    fault_window: tuple[float, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each limit of ``slo`` against the run's figures: ``{name: {limit, overall, ...}}``.

    Without a fault window the ``overall`` figure is judged; with one, the
    ``before`` and ``after`` figures both are (a window with no request fails).
    """
    windows: dict[str, dict[str, Any]] = {"overall": window_figures(records)}
    checked = ["overall"]
    if fault_window is not None:
        first, last = fault_window
        windows["before"] = window_figures(records, high=first)
        windows["after"] = window_figures(records, low=last + slo.recovery_s)
        checked = ["before", "after"]
    verdicts: dict[str, dict[str, Any]] = {}
    for name, limit in slo.limits().items():
        figure = "throughput_rps" if name == "min_throughput_rps" else name
        verdict: dict[str, Any] = {"limit": limit}
        for window, figures in windows.items():
            verdict[window] = _clean(figures.get(figure))
        verdict["checked"] = checked
        verdict["pass"] = all(_meets(name, verdict[w], limit) for w in checked)
        verdicts[name] = verdict
    return verdicts
