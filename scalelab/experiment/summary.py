"""A run's headline figures (``summary.json``) from its HDR log and its per-request records.

Percentiles come from HdrHistograms, never from averaging: the ``intended`` tag
(latency from each request's intended start, coordinated-omission corrected) gives
``p50_ms`` ... ``max_ms``, the ``actual`` tag gives ``actual_p50_ms`` and
``actual_p99_ms``. Runs whose responses carry ``X-Cache`` also get
``cache_hit_ratio`` (hits over answers with the header; stale and coalesced
answers are not hits). When a warm-up is excluded, histograms are rebuilt from the
requests that started after it, with the same precision as ``latency.hdr``
(requests the open loop dropped are rows, but never latencies).

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
from scalelab.analysis.percentiles import hist_mean_ms
from scalelab.experiment.steady_state import steady_state
from scalelab.loadgen.records import histogram_of

if TYPE_CHECKING:
    from scalelab.experiment.spec import SloSpec

DROPPED_METHOD = "DROPPED"
"""The ``method`` of a row the open loop never sent (see scalelab.loadgen.users)."""

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
)


def _clean(value: Any) -> Any:
    """NaN and infinities become ``None`` so that summary.json stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_requests(path: Path, measure_from: float | None) -> dict[str, list[Any]] | None:
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


def _sent(records: dict[str, list[Any]], column: str) -> list[Any]:
    """``column`` of the requests actually sent (open-loop drops have no latency)."""
    values = records.get(column) or []
    methods = records.get("method")
    if not methods:
        return values
    return [v for v, m in zip(values, methods, strict=True) if m != DROPPED_METHOD]


def cache_hit_ratio(records: dict[str, list[Any]]) -> float | None:
    """Share of answers with an ``X-Cache`` header that were ``hit`` (None without any)."""
    answers = [c for c in records.get("cache") or [] if c]
    if not answers:
        return None
    return sum(1 for c in answers if c == "hit") / len(answers)


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
    records = _read_requests(run / "requests.parquet", measure_from)
    hists: dict[str, HdrHistogram] = {}
    if measure_from is not None and records is not None:
        column = "latency_intended_us" if "latency_intended_us" in records else "latency_us"
        hists["intended"] = _hist_of(_sent(records, column))
        hists["actual"] = _hist_of(_sent(records, "latency_us"))
    elif (run / "latency.hdr").is_file():
        hists = hdr.read_log(run / "latency.hdr")
    intended = hists.get("intended") or hists.get("actual")
    actual = hists.get("actual") or intended

    summary: dict[str, Any] = dict.fromkeys(FIGURES)
    requests: int | None = None
    errors: int | None = None
    duration: float | None = None
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
    elif intended is not None:
        requests = int(intended.get_total_count())

    summary["requests"] = requests
    summary["errors"] = errors
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

    hit_ratio = cache_hit_ratio(records or {})
    if hit_ratio is not None:
        summary["cache_hit_ratio"] = hit_ratio

    loadgen = run / "loadgen.json"
    if loadgen.is_file():
        try:
            extra = json.loads(loadgen.read_text())
        except (OSError, ValueError):
            extra = {}
        for key in ("late", "dropped"):
            if isinstance(extra, dict) and key in extra:
                summary[key] = extra[key]

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
    last response).
    """
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
    hist = _hist_of(_sent(part, column))
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
