"""The failure lab's frames: faults with their spans, steady-state phases, attempts over time.

- :func:`fault_spans`: each fault of a run (``events.parquet``) with its start
  and end, for shading a timeline;
- :func:`phase_table`: the ``[slo]`` hypothesis per phase (before, during and
  after each fault) from ``summary.json``;
- :func:`fault_table`: each fault with its time to detect and time to recover;
- :func:`attempts_per_second`: requests, attempts and their ratio (retry
  amplification) second by second;
- :func:`steady_state_html`: the two tables as HTML, for the report.

docs/results-format.md defines every figure; docs/failure.md shows how to read them.
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd

from scalelab.analysis.load import Run

PHASE_COLUMNS = [
    "phase",
    "requests",
    "error_rate",
    "timeouts",
    "p99_ms",
    "throughput_rps",
    "goodput_rps",
    "retry_amplification",
    "judged",
    "pass",
    "failed",
]


def fault_spans(run: Run) -> pd.DataFrame:
    """One row per fault started: ``name``, ``start``, ``end`` (Unix times), ``detail``.

    ``end`` is the row's ``until`` (a stall's end, a revert, a fault ended);
    without it (a run written before faults had ends), the start.
    """
    ev = run.events
    columns = ["name", "start", "end", "detail"]
    if ev.empty:
        return pd.DataFrame(columns=columns)
    rows = ev[(ev["kind"] == "fault") & ~ev["name"].isin(["revert", "end"])]
    until = rows["until"] if "until" in rows else rows["t"]
    out = pd.DataFrame(
        {
            "name": rows["name"].to_numpy(),
            "start": rows["t"].to_numpy(dtype=float),
            "end": until.fillna(rows["t"]).to_numpy(dtype=float),
            "detail": [json.loads(d) if d else {} for d in rows["detail"]],
        }
    )
    return out.reset_index(drop=True)


def phase_table(summary: dict[str, Any] | Run) -> pd.DataFrame:
    """The steady-state phases of a run, one row each (empty without faults and ``[slo]``)."""
    s = summary.summary if isinstance(summary, Run) else summary
    rows = s.get("slo_phases") or []
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=PHASE_COLUMNS)
    return frame[[c for c in PHASE_COLUMNS if c in frame.columns]]


def fault_table(summary: dict[str, Any] | Run) -> pd.DataFrame:
    """Each fault: ``kind``, ``start``, ``end``, ``time_to_detect_s``, ``time_to_recover_s``."""
    s = summary.summary if isinstance(summary, Run) else summary
    return pd.DataFrame(
        s.get("faults") or [],
        columns=["index", "kind", "start", "end", "time_to_detect_s", "time_to_recover_s"],
    )


def attempts_per_second(run: Run) -> pd.DataFrame:
    """Per second of intended start: ``requests``, ``attempts`` and ``amplification``."""
    req = run.requests
    if req.empty or "attempts" not in req:
        return pd.DataFrame(columns=["second", "requests", "attempts", "amplification"])
    t0 = float(req["intended_start"].min())
    second = ((req["intended_start"] - t0) // 1).astype(int)
    tried = req["attempts"].where(req["attempts"] > 0)
    grouped = pd.DataFrame({"second": second, "attempts": tried}).groupby("second")
    out = pd.DataFrame(
        {
            "requests": grouped["attempts"].count(),
            "attempts": grouped["attempts"].sum(),
        }
    ).reset_index()
    out["amplification"] = out["attempts"] / out["requests"].where(out["requests"] > 0)
    return out


def _cell(value: Any, pattern: str = "{:.3g}") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    if isinstance(value, float):
        return pattern.format(value)
    return html.escape(str(value))


def steady_state_html(summary: dict[str, Any], title: str = "Steady state, phase by phase") -> str:
    """The phases and faults of a run as HTML ('' for a run without faults and ``[slo]``)."""
    phases = summary.get("slo_phases") or []
    if not phases:
        return ""
    verdict = (
        "held"
        if summary.get("slo_pass")
        else (f"did NOT hold (first in {summary.get('slo_failed_phase')})")
    )
    head = [
        "phase",
        "requests",
        "errors %",
        "timeouts",
        "p99 ms",
        "req/s",
        "goodput/s",
        "attempts/request",
        "judged",
        "pass",
        "failed limits",
    ]
    lines = [
        "<h2>Steady state, phase by phase</h2>",
        f"<p>The hypothesis {html.escape(verdict)}.</p>",
        "<table class='data'><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>",
    ]
    for p in phases:
        rate = p.get("error_rate")
        cells = [
            p["phase"],
            p.get("requests"),
            None if rate is None else rate * 100,
            p.get("timeouts"),
            p.get("p99_ms"),
            p.get("throughput_rps"),
            p.get("goodput_rps"),
            p.get("retry_amplification"),
            p.get("judged"),
            p.get("pass"),
            p.get("failed"),
        ]
        lines.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    lines.append("</table>")
    faults = summary.get("faults") or []
    if faults:
        lines.append(
            "<table class='data'><tr><th>fault</th><th>kind</th><th>lasted s</th>"
            "<th>time to detect s</th><th>time to recover s</th></tr>"
        )
        for f in faults:
            cells = [
                f"faults.{f['index']}",
                f["kind"],
                f["end"] - f["start"],
                f.get("time_to_detect_s"),
                f.get("time_to_recover_s"),
            ]
            lines.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
        lines.append("</table>")
    return "\n".join(lines)
