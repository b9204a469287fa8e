"""A run's headline figures (``summary.json``) from its HDR log and its per-request records.

Percentiles come from HdrHistograms, never from averaging: the ``intended`` tag
(latency from each request's intended start, coordinated-omission corrected) gives
``p50_ms`` ... ``max_ms``, the ``actual`` tag gives ``actual_p50_ms`` and
``actual_p99_ms``. When a warm-up is excluded, histograms are rebuilt from the
requests that started after it, with the same precision as ``latency.hdr``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from scalelab import hdr

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

    wanted = ["intended_start", "start", "latency_us", "latency_intended_us", "ok"]
    table = pq.read_table(path)
    present = [c for c in wanted if c in table.column_names]
    data: dict[str, list[Any]] = {c: table.column(c).to_pylist() for c in present}
    if measure_from is not None and "intended_start" in data:
        keep = [i for i, t in enumerate(data["intended_start"]) if t >= measure_from]
        data = {c: [v[i] for i in keep] for c, v in data.items()}
    return data


def _hist_of(values: list[Any]) -> HdrHistogram:
    hist = hdr.new_histogram()
    for v in values:
        hist.record_value(hdr.clamp_us(v))
    return hist


def compute_summary(
    run_dir: str | Path,
    *,
    run_id: str = "",
    params: dict[str, Any] | None = None,
    status: str = "ok",
    measure_from: float | None = None,
) -> dict[str, Any]:
    """The figures of ``summary.json`` for a run directory (missing inputs give ``None``).

    ``measure_from`` (a Unix time) leaves out requests whose intended start is
    earlier: the warm-up.
    """
    run = Path(run_dir)
    records = _read_requests(run / "requests.parquet", measure_from)
    hists: dict[str, HdrHistogram] = {}
    if measure_from is not None and records is not None:
        hists["intended"] = _hist_of(
            records.get("latency_intended_us") or records.get("latency_us", [])
        )
        hists["actual"] = _hist_of(records.get("latency_us", []))
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
        summary["mean_ms"] = intended.get_mean_value() / 1000.0
    if actual is not None and actual.get_total_count():
        pct = hdr.percentiles_ms(actual, (50.0, 99.0))
        summary["actual_p50_ms"] = pct[50.0]
        summary["actual_p99_ms"] = pct[99.0]

    loadgen = run / "loadgen.json"
    if loadgen.is_file():
        try:
            extra = json.loads(loadgen.read_text())
        except (OSError, ValueError):
            extra = {}
        for key in ("late", "dropped"):
            if isinstance(extra, dict) and key in extra:
                summary[key] = extra[key]

    summary["params"] = dict(params or {})
    summary["run_id"] = run_id
    summary["status"] = status
    return {k: _clean(v) for k, v in summary.items()}
