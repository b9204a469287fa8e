"""A self-contained HTML report of a run or an experiment, and a summary table for terminals.

The report is one file with its figures embedded as base64 PNG and its style
inline, so it can be mailed, archived beside the results or opened offline; it
links, by relative paths, to what each run directory holds beside it (Locust's
HTML report, Dask's performance report, the service's log: :data:`RUN_LINKS`).
Figures are drawn on plain :class:`~matplotlib.figure.Figure` objects (no
pyplot, no display), so a report can be written from any process.

An experiment's report has the runs table, the comparison across the sweep
(bars for a categorical parameter, lines for a numeric one, the repeats'
spread on each), the theory the runs allow (a Universal Scalability Law fit of
a concurrency sweep), and per run a timeline of throughput, latency and errors
with the faults shaded, and under it what the service and the Dask workers
were doing (CPU, requests and tasks in flight, tasks per second) with Little's
law. A run's report has the same timeline and the run's details.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
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
from scalelab.analysis.queueing import LittleLaw, in_flight_series, little_law, mmc_prediction
from scalelab.errors import ScaleLabError
from scalelab.fileio import write_text

MAX_LINES = 10
"""Runs drawn on one time-series plot before it becomes unreadable."""

MAX_TIMELINES = 12
"""Runs of an experiment given a timeline in its report; the rest are linked."""

RUN_LINKS: tuple[tuple[str, str], ...] = (
    ("run report", "report.html"),
    ("Locust report", "locust/report.html"),
    ("Dask performance report", "dask-report.html"),
    ("service log", "service.log"),
)
"""Files of a run directory the report links to when they exist: (title, relative path)."""

_FIGURES = [
    ("requests", "requests", "{:,.0f}"),
    ("throughput_rps", "req/s", "{:,.1f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p90_ms", "p90 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("p999_ms", "p99.9 ms", "{:.2f}"),
    ("max_ms", "max ms", "{:.2f}"),
    ("error_rate", "errors %", "{:.2%}"),
    ("dropped", "dropped", "{:,.0f}"),
]

# The runs table of the HTML report: fewer columns than the terminal's, units in headers.
_HTML_FIGURES = [
    ("requests", "requests", "{:,.0f}"),
    ("throughput_rps", "throughput (req/s)", "{:,.1f}"),
    ("p50_ms", "median (ms)", "{:,.1f}"),
    ("p99_ms", "p99 (ms)", "{:,.1f}"),
    ("p999_ms", "p99.9 (ms)", "{:,.1f}"),
    ("error_rate", "errors (%)", "{:.2%}"),
]

_CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 1080px; color: #1f2328; padding: 0 1.2em; line-height: 1.45; }
h1 { font-size: 1.7em; margin: 0 0 0.2em; }
h2 { margin-top: 1.8em; padding-bottom: 0.2em; border-bottom: 1px solid #d0d7de; }
h3 { margin: 1.4em 0 0.3em; font-size: 1.1em; }
a { color: #0969da; }
.lead { font-size: 1.1em; margin: 0.2em 0 0.6em; }
.meta { color: #57606a; font-size: 0.9em; }
.meta b { color: #1f2328; font-weight: 600; }
.badge { display: inline-block; padding: 0 0.55em; border-radius: 1em; font-weight: 600;
         font-size: 0.9em; color: #fff; background: #6e7781; }
.badge.ok { background: #1a7f37; } .badge.failed, .badge.interrupted { background: #cf222e; }
.badge.running { background: #9a6700; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.6em 0; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; }
td.text, th.text { text-align: left; }
td.wrap { white-space: normal; min-width: 16em; }
tr:nth-child(even) td { background: #fbfcfd; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
.note { font-size: 0.88em; color: #57606a; max-width: 60em; }
.links { font-size: 0.9em; margin: 0.2em 0; }
.links a { margin-right: 1em; }
.card { border-top: 1px solid #eaeef2; margin-top: 1.2em; }
code { font-size: 0.9em; background: #f6f8fa; padding: 0 0.25em; border-radius: 3px; }
details { margin: 0.4em 0; } summary { cursor: pointer; color: #57606a; }
"""


# --- text and tables ---------------------------------------------------------------------


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


@dataclass(frozen=True)
class _Raw:
    """Table cell content that is already HTML (a link, a badge)."""

    html: str


def _cell(value: Any) -> str:
    return value.html if isinstance(value, _Raw) else html.escape(str(value))


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    text: int | Collection[int] = 1,
    wrap: Collection[int] = (),
) -> str:
    """An HTML table in a horizontally scrolling box.

    ``text`` gives the columns set as text (left-aligned): the first ``text``
    columns, or those indices; the others are figures. Only the ``wrap``
    columns (long free text) break across lines.
    """
    text_cols = set(range(text)) if isinstance(text, int) else set(text)

    def cls(i: int) -> str:
        names = ["text"] * (i in text_cols) + ["wrap"] * (i in wrap)
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{_cell(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _frame_table(frame: pd.DataFrame, text: int | Collection[int] = 1) -> str:
    rows = (
        [_fmt(v, "{:,.2f}") if isinstance(v, float) else v for v in row]
        for row in frame.itertuples(index=False)
    )
    return _table([str(c) for c in frame.columns], rows, text)


def _percentile_title(column: Any) -> str:
    """``p999_ms`` -> ``p99.9 (ms)``, ``mean_ms`` -> ``mean (ms)``, ``label`` -> ``latency``."""
    name = str(column)
    if name == "label":
        return "latency from"
    if name == "count":
        return "requests"
    if name.endswith("_ms"):
        stem = name[:-3]
        if stem.startswith("p") and stem[1:].isdigit() and len(stem) > 3:
            stem = f"p{stem[1:3]}.{stem[3:]}"
        return f"{stem} (ms)"
    return name


def _badge(status: str) -> str:
    return f'<span class="badge {html.escape(status)}">{html.escape(status)}</span>'


def _meta(items: Sequence[tuple[str, Any]]) -> str:
    text = "<br>".join(
        f"<b>{html.escape(k)}</b>: {html.escape(str(v))}" for k, v in items if v not in (None, "")
    )
    return f'<p class="meta">{text}</p>'


def _anchor(run_id: str) -> str:
    return "run-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)


def _href(path: Path, base: Path) -> str:
    """``path`` relative to the report's folder, as a URL path."""
    rel = os.path.relpath(path.resolve(), base.resolve())
    return html.escape("/".join(rel.split(os.sep)).replace("#", "%23").replace("?", "%3F"))


def _links(run: Run, base: Path, skip: str | None = None) -> list[str]:
    """Links to what the run directory holds (:data:`RUN_LINKS`), where it exists."""
    out = []
    for title, rel in RUN_LINKS:
        target = run.path / rel
        if rel != skip and target.is_file():
            out.append(f'<a href="{_href(target, base)}">{html.escape(title)}</a>')
    return out


def _links_html(run: Run, base: Path, skip: str | None = None) -> str:
    links = _links(run, base, skip)
    prom = run.path / "prometheus" / "data"
    if prom.is_dir():
        links.append(
            "Prometheus data: <code>scalelab prometheus "
            + html.escape(str(run.path))
            + "</code> opens it again"
        )
    return f'<p class="links">{" ".join(links)}</p>' if links else ""


# --- figures -----------------------------------------------------------------------------


def _png(fig: Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure(draw: Callable[[Axes], Any], alt: str, size: tuple[float, float] = (9.0, 4.0)) -> str:
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    draw(ax)
    fig.tight_layout()
    return _png(fig, alt)


def _timeline(run: Run) -> str:
    if run.requests.empty:
        return ""
    kinds = 3 if not run.metrics.empty else 0
    fig = Figure(figsize=(11.0, 1.9 * (2 + kinds) + 0.8))
    plots.run_timeline(run, fig, title=False)
    return _png(fig, f"timeline of {run.run_id}")


# --- theory ------------------------------------------------------------------------------


def _little(run: Run) -> LittleLaw | None:
    """Little's law for the run, where it has the service's in-flight gauge (else None)."""
    if run.requests.empty or not len(in_flight_series(run)):
        return None
    try:
        return little_law(run, trim_s=1.0)
    except ScaleLabError:
        return None


def _little_sentence(run: Run) -> str:
    """Little's law in one sentence, where the run has the service's in-flight gauge."""
    ll = _little(run)
    if ll is None or not math.isfinite(ll.predicted_in_flight):
        return ""
    return (
        f"Little's law: λ = {ll.arrival_rate_rps:,.1f} req/s times W = "
        f"{ll.mean_latency_s * 1000:,.1f} ms gives L = {ll.predicted_in_flight:,.1f} requests "
        f"in flight; the service measured {_fmt(ll.measured_in_flight, '{:,.1f}')} "
        f"({_fmt(ll.relative_difference, '{:+.0%}')})."
    )


def _little_html(run: Run) -> str:
    ll = _little(run)
    if ll is None:
        return ""
    rows = [
        ("arrival rate λ (req/s)", _fmt(ll.arrival_rate_rps, "{:,.2f}")),
        ("mean response time W (ms)", _fmt(ll.mean_latency_s * 1000.0, "{:,.2f}")),
        ("L = λW (requests)", _fmt(ll.predicted_in_flight, "{:,.2f}")),
        ("in flight, client records (time average)", _fmt(ll.client_in_flight, "{:,.2f}")),
        ("in flight, measured by the service", _fmt(ll.measured_in_flight, "{:,.2f}")),
        ("relative difference", _fmt(ll.relative_difference, "{:+.1%}")),
    ]
    return (
        "<h2>Little's law</h2>"
        '<p class="note">Over the measured time less 1 s at each end. L = λW holds for any '
        "stable system; the service's own in-flight gauge, sampled by the run's scraper, should "
        "agree with it.</p>" + _table(["Little's law", "value"], rows)
    )


def _mmc_sentence(run: Run) -> str:
    """M/M/c where the run is one: Poisson arrivals (open loop), exponential I/O, c workers."""
    spec = run.spec
    load, scenario = spec.get("load") or {}, spec.get("scenario") or {}
    cluster = (spec.get("service") or {}).get("cluster") or {}
    executor = ((spec.get("service") or {}).get("executor") or {}).get("kind", "direct")
    if not (
        load.get("mode") == "open"
        and load.get("arrival", "poisson") == "poisson"
        and scenario.get("endpoint") == "io"
        and scenario.get("io_dist") == "exponential"
        and not scenario.get("io_local")
        and executor == "direct"
        and not cluster.get("scheduler")
    ):
        return ""
    try:
        servers = int(cluster.get("workers", 2)) * int(cluster.get("threads_per_worker", 1))
        mean_s = float(scenario.get("io_ms", 10.0)) / 1000.0
        cmp = mmc_prediction(run, servers=servers, service_rate=1.0 / mean_s, trim_s=1.0)
    except (ScaleLabError, ValueError, TypeError, ZeroDivisionError):
        return ""
    pred = cmp.prediction
    if not pred.stable:
        return (
            f"M/M/{servers}: at λ = {cmp.measured_arrival_rate:,.1f} req/s and a mean service "
            f"time of {mean_s * 1000:g} ms the load is {pred.utilization:.0%} of capacity: "
            "the model's queue grows without bound."
        )
    return (
        f"M/M/{servers} (Poisson arrivals, exponential service of mean {mean_s * 1000:g} ms, "
        f"{servers} Dask worker threads): utilisation {pred.utilization:.0%}, predicted mean "
        f"response {pred.mean_response_s * 1000:,.2f} ms, measured "
        f"{cmp.measured_response_s * 1000:,.2f} ms ({cmp.relative_error:+.0%}; the model "
        "leaves out the service's and Dask's own time per task)."
    )


def _usl_html(exp: Experiment) -> str:
    """A USL fit when the experiment sweeps concurrency alone (load.users, closed loop)."""
    from scalelab.analysis.usl import fit_usl

    if exp.swept != ["load.users"] or "load.users" not in exp.table.columns:
        return ""
    modes = {str((r.spec.get("load") or {}).get("mode", "closed")) for r in exp.runs}
    ok = exp.table[exp.table["status"] == "ok"]
    if modes != {"closed"} or ok.empty:
        return ""
    n = pd.to_numeric(ok["load.users"], errors="coerce").to_numpy(dtype=float)
    x = pd.to_numeric(ok["throughput_rps"], errors="coerce").to_numpy(dtype=float)
    try:
        fit = fit_usl(n, x)
    except ScaleLabError:
        return ""
    peak = (
        f"throughput peaks at N* = {fit.peak_concurrency:,.1f} users "
        f"({fit.peak_throughput:,.0f} req/s)"
        if math.isfinite(fit.peak_concurrency)
        else "no peak within reach (κ = 0)"
    )
    return (
        "<h3>Universal Scalability Law</h3>"
        f'<p class="note">Fitted to every run: σ = {fit.sigma:.3g} (contention), '
        f"κ = {fit.kappa:.3g} (crosstalk), λ = {fit.lambda_:,.1f} req/s per user, "
        f"R² = {_fmt(fit.r_squared, '{:.3f}')}; {peak}.</p>"
        + _figure(lambda ax: plots.usl_plot(fit, n, x, ax=ax), "USL fit", (8.0, 4.0))
    )


# --- sections ----------------------------------------------------------------------------


def _runs_table(runs: Sequence[Run], base: Path, anchors: set[str]) -> str:
    names: dict[str, None] = {}
    for r in runs:
        names.update(dict.fromkeys(r.params))
    params = list(names)
    slo = any("slo_pass" in r.summary for r in runs)
    headers = ["run", "status", *(plots.label_of(p) for p in params)]
    headers += [title for _, title, _ in _HTML_FIGURES]
    headers += ["SLO"] * slo + ["reports"]
    rows = []
    for r in runs:
        anchor = _anchor(r.run_id)
        name = (
            _Raw(f'<a href="#{anchor}">{html.escape(r.run_id)}</a>')
            if anchor in anchors
            else r.run_id
        )
        row: list[Any] = [name, _Raw(_badge(r.status))]
        row += [str(r.params.get(p, "")) for p in params]
        row += [_fmt(r.summary.get(key), pattern) for key, _, pattern in _HTML_FIGURES]
        if slo:
            verdict = r.summary.get("slo_pass")
            row.append("-" if verdict is None else ("pass" if verdict else "fail"))
        links = [
            f'<a href="{_href(r.path / rel, base)}">{title.split()[0]}</a>'
            for title, rel in RUN_LINKS[1:3]
            if (r.path / rel).is_file()
        ]
        row.append(_Raw(" · ".join(links) or "-"))
        rows.append(row)
    return _table(headers, rows, text=[*range(2 + len(params)), len(headers) - 1])


def _comparison_table(gp: pd.DataFrame, swept: list[str]) -> str:
    headers = [plots.label_of(p) for p in swept] + [
        "runs",
        "requests",
        "throughput (req/s)",
        "median (ms)",
        "p90 (ms)",
        "p99 (ms)",
        "p99.9 (ms)",
        "errors (%)",
    ]
    rows = []
    for _, g in gp.iterrows():
        tput = _fmt(g.get("throughput_rps"), "{:,.1f}")
        spread = g.get("throughput_rps_std")
        if spread is not None and isinstance(spread, float) and math.isfinite(spread):
            tput += f" ± {spread:,.1f}"
        rows.append(
            [str(g[p]) for p in swept]
            + [
                _fmt(g.get("runs"), "{:,.0f}"),
                _fmt(g.get("requests"), "{:,.0f}"),
                tput,
                _fmt(g.get("p50_ms"), "{:,.1f}"),
                _fmt(g.get("p90_ms"), "{:,.1f}"),
                _fmt(g.get("p99_ms"), "{:,.1f}"),
                _fmt(g.get("p999_ms"), "{:,.1f}"),
                _fmt(g.get("error_rate"), "{:.2%}"),
            ]
        )
    return _table(headers, rows, text=len(swept))


def _run_card(run: Run, base: Path) -> str:
    """One run inside an experiment's report: heading, links, timeline, theory."""
    title = html.escape(run.run_id)
    params = html.escape(", ".join(f"{plots.label_of(k)} = {v}" for k, v in run.params.items()))
    parts = [
        f'<div class="card" id="{_anchor(run.run_id)}">',
        f"<h3>{title} {_badge(run.status)}</h3>",
        f'<p class="meta">{params}</p>' if params else "",
        _links_html(run, base),
    ]
    if run.info.get("error"):
        parts.append(f'<p class="note">{html.escape(str(run.info["error"]))}</p>')
    parts.append(_timeline(run))
    for sentence in (_little_sentence(run), _mmc_sentence(run)):
        if sentence:
            parts.append(f'<p class="note">{html.escape(sentence)}</p>')
    parts.append("</div>")
    return "\n".join(p for p in parts if p)


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )


_TIMELINE_NOTE = (
    '<p class="note">Throughput and errors per second, and the median and p99 latency of the '
    "requests answered in each second (from their intended start). Shaded: the warm-up (grey) "
    "and each fault while it was on. Under them, from the service's and Dask's "
    "<code>/metrics</code> scraped once a second by default: CPU of each process, requests in "
    "the service and Dask tasks on the workers (with Little's law λW over the measured time, "
    "dashed), and Dask tasks per second.</p>"
)


def _runs_text(runs: int, sweep: Any, repeats: Any) -> str:
    """``4 (2 sweep points × 2 repeats)``."""
    points = math.prod(len(v) for v in dict(sweep or {}).values()) if sweep else 1
    reps = int(repeats or 1)
    what = [f"{points} sweep points"] * (points > 1) + [f"{reps} repeats"] * (reps > 1)
    return f"{runs} ({' × '.join(what)})" if what else str(runs)


def _run_meta(run: Run) -> str:
    info = run.info
    return _meta(
        [
            ("experiment", info.get("experiment")),
            ("started", info.get("started_at")),
            ("ended", info.get("ended_at")),
            ("duration (s)", _fmt(run.summary.get("duration_s"), "{:,.1f}")),
            ("service", info.get("service_url")),
            ("scheduler", info.get("scheduler")),
            ("Dask dashboard (while it ran)", info.get("dashboard_link")),
            ("git commit", info.get("git_commit")),
            ("host", _host_text(info.get("host"))),
            ("versions", _versions_text(info.get("versions"))),
        ]
    )


def _host_text(host: Any) -> Any:
    if not isinstance(host, dict):
        return host
    parts = [str(host.get("hostname") or "")]
    if host.get("cpus"):
        parts.append(f"{host['cpus']} CPUs")
    if isinstance(host.get("memory"), int | float):
        parts.append(f"{host['memory'] / 2**30:,.1f} GiB")
    return ", ".join(p for p in parts if p)


def _versions_text(versions: Any) -> Any:
    if not isinstance(versions, dict):
        return versions
    return ", ".join(f"{k} {v}" for k, v in versions.items() if v)


def _errors_html(run: Run) -> str:
    req = run.sent_requests  # the open loop's drops are counted apart, not as errors
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
    counts.columns = ["HTTP status", "error", "requests"]
    rows = counts[["error", "HTTP status", "requests"]].itertuples(index=False)
    return "<h2>Errors</h2>" + _table(["error", "HTTP status", "requests"], rows, wrap=(0,))


def _events_html(run: Run) -> str:
    ev = run.events
    if ev.empty:
        return ""
    t0 = per_second(run).attrs.get("t0")
    detail = ev["detail"].astype(str).map(lambda d: d if len(d) <= 120 else d[:117] + "...")
    rows = [
        (
            _fmt(float(t) - t0, "{:+.2f}") if t0 is not None else "-",
            kind,
            name,
            _Raw(f"<code>{html.escape(d)}</code>"),
        )
        for t, kind, name, d in zip(ev["t"], ev["kind"], ev["name"], detail, strict=True)
    ]
    return "<h2>Events</h2>" + _table(
        ["time from first request (s)", "kind", "name", "detail"], rows, text=(1, 2, 3), wrap=(3,)
    )


def run_report_html(run: Run, base: Path | None = None) -> str:
    """The HTML report of one run; links are relative to ``base`` (the run directory)."""
    base = base or run.path
    s = run.summary
    figures = [
        ("requests measured", _fmt(s.get("requests"), "{:,.0f}")),
        ("throughput (req/s)", _fmt(s.get("throughput_rps"), "{:,.1f}")),
        ("median latency (ms)", _fmt(s.get("p50_ms"), "{:,.2f}")),
        ("p90 latency (ms)", _fmt(s.get("p90_ms"), "{:,.2f}")),
        ("p99 latency (ms)", _fmt(s.get("p99_ms"), "{:,.2f}")),
        ("p99.9 latency (ms)", _fmt(s.get("p999_ms"), "{:,.2f}")),
        ("largest latency (ms)", _fmt(s.get("max_ms"), "{:,.2f}")),
        ("errors (%)", _fmt(s.get("error_rate"), "{:.2%}")),
        ("dropped, never sent", _fmt(s.get("dropped"), "{:,.0f}")),
    ]
    params = ", ".join(f"{plots.label_of(k)} = {v}" for k, v in run.params.items())
    body = [
        f"<h1>Run {html.escape(run.run_id)}</h1>",
        f'<p class="lead">{_badge(run.status)} {html.escape(params)}'
        + (f" &mdash; {html.escape(str(run.info['error']))}" if run.info.get("error") else "")
        + "</p>",
        _links_html(run, base, skip="report.html"),
        _run_meta(run),
        "<h2>Summary</h2>",
        _table(["figure", "value"], figures),
    ]
    if run.histograms:
        measured = {tag: run.measured_histogram(tag) for tag in run.histograms}
        table = percentile_table(measured).reset_index()
        body += [
            "<h2>Latency percentiles</h2>",
            '<p class="note">From the HDR histograms: <i>intended</i> is measured from when '
            "each request should have started (corrected for coordinated omission), "
            "<i>actual</i> from when it was sent. A warm-up, if any, is left out.</p>",
            _frame_table(table.rename(columns=_percentile_title)),
            _figure(lambda ax: plots.latency_percentiles(measured, ax=ax), "latency by percentile"),
        ]
    if not run.requests.empty:
        body += ["<h2>Over time</h2>", _TIMELINE_NOTE, _timeline(run)]
        mmc = _mmc_sentence(run)
        if mmc:
            body.append(f'<p class="note">{html.escape(mmc)}</p>')
    body += [_errors_html(run), steady_state_html(run.summary), _little_html(run)]
    body += [_partitioning_html(run), _events_html(run)]
    return _page(f"scalelab run {run.run_id}", body)


def _partitioning_html(target: Run | Experiment) -> str:
    """The partitioning section (per-partition load; the overhead knee of a partition-count
    sweep) for runs whose service had a router; empty otherwise."""
    from scalelab.partition_plots import report_section

    return report_section(target)


def _group_labels(exp: Experiment) -> tuple[list[str], dict[str, list[Run]]]:
    """Runs grouped by their swept values (repeats together), labelled for plots."""
    swept = exp.swept
    short = _short_names(swept)
    groups: dict[str, list[Run]] = {}
    for r in exp.runs:
        label = " ".join(f"{short[k]}={r.params.get(k)}" for k in swept) or r.run_id
        groups.setdefault(label, []).append(r)
    return swept, groups


def experiment_report_html(exp: Experiment, base: Path | None = None) -> str:
    """The HTML report of an experiment; links are relative to ``base`` (its directory)."""
    base = base or exp.path
    status = str(exp.info.get("status") or "unknown")
    started, ended = exp.info.get("started_at"), exp.info.get("ended_at")
    sweep = exp.info.get("sweep") or {}
    sweep_text = "; ".join(
        f"{plots.label_of(k)}: {', '.join(map(str, v))}" for k, v in dict(sweep).items()
    )
    timed = [r for r in exp.runs if not r.requests.empty]
    cards = timed[:MAX_TIMELINES]
    anchors = {_anchor(r.run_id) for r in cards}
    body = [
        f"<h1>Experiment {html.escape(exp.name)}</h1>",
        f'<p class="lead">status: {_badge(status)} &nbsp; '
        f"{html.escape(str(exp.info.get('description') or ''))}</p>",
        _meta(
            [
                ("runs", _runs_text(len(exp.runs), sweep, exp.info.get("repeats"))),
                ("sweep", sweep_text),
                ("started", started),
                ("ended", ended),
                ("spec", exp.info.get("spec_path") or exp.info.get("spec")),
                ("results", str(exp.path)),
            ]
        ),
        "<h2>Runs</h2>",
        _runs_table(exp.runs, base, anchors),
    ]
    swept, groups = _group_labels(exp)
    with_data = [r for r in exp.runs if r.histograms]
    if swept and with_data:
        gp = group_percentiles(exp, by=swept)
        body += [
            "<h2>Comparison</h2>",
            '<p class="note">Each group merges the HDR histograms of its repeats: its '
            "percentiles are read from the merged histogram, never averaged; throughput is "
            "the mean over repeats (± their standard deviation). In the figures, a bar (or a "
            "point on a line) is the group's value, a black line spans the repeats' lowest to "
            "highest, and each dot is one repeat.</p>",
            _comparison_table(gp, swept),
        ]
        for param in swept[:3]:
            fig = Figure(figsize=(12.0, 3.8))
            axes = fig.subplots(1, 3)
            plots.compare_runs(exp, param, ax=list(np.ravel(axes)))
            body.append(_png(fig, f"comparison by {plots.label_of(param)}"))
        body.append(_usl_html(exp))
    body.append(_partitioning_html(exp))
    if with_data:
        hists = {label: merged_histogram(runs) for label, runs in groups.items()}
        if len(hists) > MAX_LINES:
            hists = dict(list(hists.items())[:MAX_LINES])
        body += [
            "<h2>Latency percentiles</h2>",
            '<p class="note">Latency against percentile, the tail to the right; each line '
            "merges a group's repeats.</p>",
            _figure(lambda ax: plots.latency_percentiles(hists, ax=ax), "latency by percentile"),
        ]
    if cards:
        body += ["<h2>Each run over time</h2>", _TIMELINE_NOTE]
        if len(timed) > len(cards):
            body.append(
                f'<p class="note">The first {len(cards)} runs; the other '
                f"{len(timed) - len(cards)} have their own report (<code>scalelab report "
                "RUN_DIR</code>).</p>"
            )
        body += [_run_card(r, base) for r in cards]
    body += [steady_state_html(r.summary, f"Steady state of {r.run_id}") for r in exp.runs]
    failed = [r for r in exp.runs if r.status != "ok"]
    if failed:
        body.append("<h2>Runs that did not finish</h2>")
        body.append(
            _table(
                ["run", "status", "error"],
                [(r.run_id, r.status, str(r.info.get("error") or "")) for r in failed],
                text=3,
                wrap=(2,),
            )
        )
    return _page(f"scalelab experiment {exp.name}", body)


# --- entry points ------------------------------------------------------------------------


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


def write_report(path: str | Path | Run | Experiment, output: str | Path | None = None) -> Path:
    """Write the HTML report of a run or an experiment; return where it went.

    ``path`` is a run directory, an experiment directory (or its ``latest`` link,
    or ``results/<experiment>``), or an already loaded Run or Experiment. The
    report goes to ``output``, by default ``report.html`` in that directory, and
    is written whole or not at all; its links to the runs' files are relative
    to where it goes.
    """
    target = path if isinstance(path, Run | Experiment) else _load(path)
    out = Path(output) if output is not None else target.path / "report.html"
    base = out.resolve().parent
    if isinstance(target, Run):
        text = run_report_html(target, base)
    else:
        text = experiment_report_html(target, base)
    write_text(out, text)
    return out


def report_from_args(args: argparse.Namespace) -> int:
    """``scalelab report DIR [--output FILE]``: print the summary table and write the report."""
    target = _load(args.path)
    print(summary_table_text(target))
    out = write_report(target, getattr(args, "output", None))
    print(f"report: {out}")
    return 0
