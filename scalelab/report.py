"""A self-contained HTML report of a run or an experiment, and a summary table for terminals.

The report is one file with its figures embedded as base64 PNG and its style
inline, so it can be mailed, archived beside the results or opened offline.
Figures are drawn on plain :class:`~matplotlib.figure.Figure` objects (no
pyplot, no display), so a report can be written from any process.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scalelab import plots
from scalelab.analysis.failure import steady_state_html
from scalelab.analysis.frames import per_second
from scalelab.analysis.load import (
    Experiment,
    Run,
    is_run_dir,
    load_experiment,
    load_run,
    resolve_experiment_dir,
)
from scalelab.analysis.percentiles import group_percentiles, merged_histogram, percentile_table
from scalelab.analysis.queueing import in_flight_series, little_law
from scalelab.errors import ScaleLabError
from scalelab.fileio import write_text

MAX_LINES = 10  # runs drawn on one time-series plot before it becomes unreadable

_FIGURES = [
    ("requests", "requests", "{:,.0f}"),
    ("throughput_rps", "req/s", "{:,.1f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p90_ms", "p90 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("p999_ms", "p99.9 ms", "{:.2f}"),
    ("max_ms", "max ms", "{:.2f}"),
    ("error_rate", "errors %", "{:.2%}"),
]

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.status-ok { color: #1a7f37; } .status-failed, .status-interrupted { color: #cf222e; }
.note { font-size: 0.85em; color: #555; }
"""


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def _short_names(names: list[str]) -> dict[str, str]:
    """Parameter names shortened to their last dotted part where that stays unique."""
    last = [n.rsplit(".", 1)[-1] for n in names]
    return {n: (s if last.count(s) == 1 else n) for n, s in zip(names, last, strict=True)}


def summary_frame(target: Run | Experiment) -> pd.DataFrame:
    """The summary as display text: one row per run (run, status, parameters, figures)."""
    runs = [target] if isinstance(target, Run) else target.runs
    names: dict[str, None] = {}
    for r in runs:
        names.update(dict.fromkeys(r.params))
    short = _short_names(list(names))
    rows = []
    for r in runs:
        row = {"run": r.run_id, "status": r.status}
        for n, s in short.items():
            row[s] = str(r.params.get(n, ""))
        for key, title, pattern in _FIGURES:
            row[title] = _fmt(r.summary.get(key), pattern)
        rows.append(row)
    columns = ["run", "status", *short.values(), *(t for _, t, _ in _FIGURES)]
    return pd.DataFrame(rows, columns=columns)


def summary_table_text(target: Run | Experiment) -> str:
    """A plain fixed-width summary table for a terminal."""
    frame = summary_frame(target)
    if frame.empty:
        return "(no runs)"
    return frame.to_string(index=False)


def _load(path: str | Path) -> Run | Experiment:
    p = Path(path)
    expected = (
        "expected a run directory (holding run.json), an experiment directory "
        "results/<experiment>/<stamp> (holding experiment.json and one directory per run), "
        "its 'latest' link, or results/<experiment>"
    )
    if not p.exists():
        raise ScaleLabError(f"{p}: no such file or directory; {expected}")
    if is_run_dir(p):
        return load_run(p)
    if resolve_experiment_dir(p) is not None:
        return load_experiment(p)
    raise ScaleLabError(f"{p}: neither a run nor an experiment; {expected}")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _figure(draw: Callable[[Axes], Any], size: tuple[float, float] = (8.0, 4.2)) -> str:
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    draw(ax)
    fig.tight_layout()
    return _png(fig)


def _table_html(frame: pd.DataFrame, index: bool = False, float_format: str = "{:.3f}") -> str:
    return frame.to_html(
        index=index,
        border=0,
        na_rep="-",
        float_format=lambda v: float_format.format(v),
        classes="data",
    )


def _status_html(status: str) -> str:
    return f'<span class="status-{html.escape(status)}">{html.escape(status)}</span>'


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _run_meta(run: Run) -> str:
    info = run.info
    items = [
        ("experiment", info.get("experiment")),
        ("started", info.get("started_at")),
        ("ended", info.get("ended_at")),
        ("duration (s)", run.summary.get("duration_s") or info.get("duration_s")),
        ("service", info.get("service_url")),
        ("scheduler", info.get("scheduler")),
        ("Dask dashboard", info.get("dashboard_link")),
        ("git commit", info.get("git_commit")),
        ("host", info.get("host")),
        ("versions", info.get("versions")),
    ]
    text = "<br>".join(
        f"<b>{html.escape(k)}</b>: {html.escape(str(v))}" for k, v in items if v not in (None, "")
    )
    return f'<p class="meta">{text}</p>'


def _errors_html(run: Run) -> str:
    req = run.requests
    if req.empty or bool(req["ok"].all()):
        return ""
    bad = req.loc[~req["ok"].astype(bool)]
    counts = (
        bad.groupby([bad["status"].astype(int), bad["error"].fillna("").astype(str)])
        .size()
        .sort_values(ascending=False)
        .head(10)
        .rename("requests")
        .reset_index()
    )
    return "<h2>Errors</h2>" + _table_html(counts)


def _little_html(run: Run) -> str:
    if run.requests.empty or not len(in_flight_series(run)):
        return ""
    try:
        ll = little_law(run, trim_s=1.0)
    except ScaleLabError:
        return ""
    frame = pd.DataFrame(
        [
            ("arrival rate λ (req/s)", ll.arrival_rate_rps),
            ("mean response time W (ms)", ll.mean_latency_s * 1000.0),
            ("L = λW (requests)", ll.predicted_in_flight),
            ("in flight, client records (time average)", ll.client_in_flight),
            ("in flight, measured by the service", ll.measured_in_flight),
            ("relative difference", ll.relative_difference),
        ],
        columns=["Little's law", "value"],
    )
    return "<h2>Little's law</h2>" + _table_html(frame)


def _events_html(run: Run) -> str:
    ev = run.events
    if ev.empty:
        return ""
    t0 = per_second(run).attrs.get("t0")
    frame = ev.copy()
    frame["detail"] = (
        frame["detail"].astype(str).map(lambda d: d if len(d) <= 160 else d[:157] + "...")
    )
    if t0 is not None:
        frame.insert(0, "t (s from load start)", frame["t"] - t0)
    return "<h2>Events</h2>" + _table_html(frame.drop(columns=["t"]))


def run_report_html(run: Run) -> str:
    """The HTML report of one run."""
    body = [
        f"<h1>Run {html.escape(run.run_id)}</h1>",
        f"<p>status: {_status_html(run.status)}"
        + (f" &mdash; {html.escape(str(run.info['error']))}" if run.info.get("error") else "")
        + "</p>",
        _run_meta(run),
        "<h2>Summary</h2>",
        _table_html(summary_frame(run)),
    ]
    if run.histograms:
        measured = {tag: run.measured_histogram(tag) for tag in run.histograms}
        body += [
            "<h2>Latency percentiles</h2>",
            '<p class="note">From the HDR histograms: <i>intended</i> is measured from when '
            "each request should have started (corrected for coordinated omission), "
            "<i>actual</i> from when it was sent. A warm-up, if any, is left out.</p>",
            _table_html(percentile_table(measured).reset_index()),
            _figure(lambda ax: plots.latency_percentiles(measured, ax=ax)),
        ]
    if not run.requests.empty:
        ps = per_second(run)
        body += [
            "<h2>Over time</h2>",
            _figure(lambda ax: plots.throughput_over_time(run, ax=ax), (8.0, 3.6)),
            _figure(
                lambda ax: plots.latency_over_time(
                    {run.run_id: ps}, ax=ax, columns=("p50_ms", "p90_ms", "p99_ms")
                ),
                (8.0, 3.6),
            ),
        ]
    body += [_errors_html(run), steady_state_html(run.summary), _little_html(run)]
    body += [_events_html(run)]
    return _page(f"scalelab run {run.run_id}", [b for b in body if b])


def _group_labels(exp: Experiment) -> tuple[list[str], dict[str, list[Run]]]:
    """Runs grouped by their swept values (repeats together), labelled for plots."""
    swept = exp.swept
    short = _short_names(swept)
    groups: dict[str, list[Run]] = {}
    for r in exp.runs:
        label = " ".join(f"{short[k]}={r.params.get(k)}" for k in swept) or r.run_id
        groups.setdefault(label, []).append(r)
    return swept, groups


def experiment_report_html(exp: Experiment) -> str:
    """The HTML report of an experiment: every run, and the comparison across them."""
    status = str(exp.info.get("status") or "unknown")
    meta = [
        ("path", str(exp.path)),
        ("spec", exp.info.get("spec_path") or exp.info.get("spec")),
        ("started", exp.info.get("started_at")),
        ("ended", exp.info.get("ended_at")),
        ("runs", len(exp.runs)),
        ("repeats", exp.info.get("repeats")),
        ("sweep", exp.info.get("sweep")),
    ]
    body = [
        f"<h1>Experiment {html.escape(exp.name)}</h1>",
        f"<p>status: {_status_html(status)}</p>",
        f"<p>{html.escape(str(exp.info.get('description') or ''))}</p>",
        '<p class="meta">'
        + "<br>".join(
            f"<b>{html.escape(k)}</b>: {html.escape(str(v))}"
            for k, v in meta
            if v not in (None, "")
        )
        + "</p>",
        "<h2>Runs</h2>",
        _table_html(summary_frame(exp)),
    ]
    swept, groups = _group_labels(exp)
    with_data = [r for r in exp.runs if r.histograms]
    if swept and with_data:
        gp = group_percentiles(exp, by=swept)
        body += [
            "<h2>Comparison</h2>",
            '<p class="note">Each group merges the HDR histograms of its repeats; '
            "percentiles are read from the merged histogram, never averaged. "
            "Throughput is the mean over repeats.</p>",
            _table_html(gp),
        ]
        for param in swept[:3]:
            fig = Figure(figsize=(12.0, 3.8))
            axes = fig.subplots(1, 3)
            plots.compare_runs(exp, param, ax=list(np.ravel(axes)))
            body.append(_png(fig))
    if with_data:
        hists = {label: merged_histogram(runs) for label, runs in groups.items()}
        if len(hists) > MAX_LINES:
            hists = dict(list(hists.items())[:MAX_LINES])
        body += [
            "<h2>Latency percentiles</h2>",
            _figure(lambda ax: plots.latency_percentiles(hists, ax=ax)),
        ]
    timed = [r for r in exp.runs if not r.requests.empty][:MAX_LINES]
    if timed:
        frames = {r.run_id: per_second(r) for r in timed}
        more = len([r for r in exp.runs if not r.requests.empty]) - len(timed)
        body += [
            "<h2>Over time</h2>",
            f'<p class="note">The first {len(timed)} runs ({more} more not drawn).</p>'
            if more > 0
            else "",
            _figure(lambda ax: plots.throughput_over_time(frames, ax=ax), (8.0, 3.6)),
            _figure(
                lambda ax: plots.latency_over_time(frames, ax=ax, columns=("p99_ms",)), (8.0, 3.6)
            ),
        ]
    body += [steady_state_html(r.summary, f"Steady state of {r.run_id}") for r in exp.runs]
    failed = [r for r in exp.runs if r.status != "ok"]
    if failed:
        body.append("<h2>Runs that did not finish</h2>")
        body.append(
            _table_html(
                pd.DataFrame(
                    [(r.run_id, r.status, str(r.info.get("error") or "")) for r in failed],
                    columns=["run", "status", "error"],
                )
            )
        )
    return _page(f"scalelab experiment {exp.name}", [b for b in body if b])


def write_report(path: str | Path | Run | Experiment, output: str | Path | None = None) -> Path:
    """Write the HTML report of a run or an experiment; return where it went.

    ``path`` is a run directory, an experiment directory (or its ``latest`` link,
    or ``results/<experiment>``), or an already loaded Run or Experiment. The
    report goes to ``output``, by default ``report.html`` in that directory, and
    is written whole or not at all.
    """
    target = path if isinstance(path, Run | Experiment) else _load(path)
    text = run_report_html(target) if isinstance(target, Run) else experiment_report_html(target)
    out = Path(output) if output is not None else target.path / "report.html"
    write_text(out, text)
    return out


def report_from_args(args: argparse.Namespace) -> int:
    """``scalelab report DIR [--output FILE]``: print the summary table and write the report."""
    target = _load(args.path)
    print(summary_table_text(target))
    out = write_report(target, getattr(args, "output", None))
    print(f"report: {out}")
    return 0
