"""A run with ``[monitoring]``: Prometheus's data agrees with metrics.parquet and opens again,
Dask's report covers the measured window, the Grafana dashboard's queries all run, the
report reads well in Chromium, and nothing is left running."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from browser import chromium_binary, inspect_page
from experiment.leaks import mentioning

from scalelab import procs
from scalelab.analysis import load_run
from scalelab.monitoring.prometheus import PrometheusServer

from .watched import USERS, Monitored

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "scalelab.json"
MARGIN_S = 0.5
"""Scrape times of Prometheus and of the run's scraper differ by the time each took to
answer; a sample is compared with the scraper's samples at least this much before and after."""


def _run(monitored: Monitored) -> Path:
    (run,) = monitored.result.runs
    return run.path


def test_run_json_says_where_to_watch_while_running_and_what_was_kept(
    monitored: Monitored,
) -> None:
    run_dir = _run(monitored)
    (live,) = monitored.seen_running
    assert live["dashboard_link"].startswith("http://") and live["scheduler"].startswith("tcp://")
    prometheus = live["monitoring"]["prometheus"]["url"]
    assert prometheus.startswith("http://127.0.0.1:")
    # and `scalelab run` prints them as the run starts
    assert f"Dask dashboard {live['dashboard_link']}, Prometheus {prometheus}" in monitored.printed
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["problems"] == []
    assert record["dashboard_link"] == live["dashboard_link"]
    prom, dask = record["monitoring"]["prometheus"], record["monitoring"]["dask_report"]
    assert prom["started"] < prom["scraping"] < prom["stopped"]
    assert prom["jobs"] == ["scalelab-service", "dask-scheduler", "dask-worker"]
    assert prom["exit_code"] == 0  # SIGTERM: Prometheus closed its data itself
    assert dask == {"file": "dask-report.html", "window_start": dask["window_start"], "error": None}
    events = pd.read_parquet(run_dir / "events.parquet").set_index("name")["t"]
    # Prometheus starts with the service and scrapes every target before the load starts.
    assert events["prometheus_start"] <= events["service_start"] < events["service_ready"]
    assert events["service_ready"] < events["prometheus_scraping"] <= events["load_start"]
    assert events["load_stop"] < events["prometheus_stop"] <= events["service_stop"]
    for name in ("prometheus/prometheus.yml", "prometheus/targets/dask-worker.json"):
        assert (run_dir / name).is_file(), name
    targets = json.loads((run_dir / "prometheus/targets/dask-worker.json").read_text())
    (worker,) = targets  # the cluster's one worker, found through the scheduler
    assert worker["labels"]["worker"].startswith("tcp://")
    assert worker["labels"]["run"] == record["run_id"] and worker["labels"]["experiment"]


def test_nothing_is_left_running(monitored: Monitored) -> None:
    with procs._lock:
        live = [c.name for c in procs._live if c.alive()]
    assert live == []
    assert mentioning(str(monitored.out)) == []


def test_dask_report_covers_the_measured_window(monitored: Monitored) -> None:
    run_dir = _run(monitored)
    text = (run_dir / "dask-report.html").read_text()
    for tab in ("Dask Performance Report", "Task Stream", "Worker Profile (compute)"):
        assert tab in text
    assert "cdn.bokeh.org" not in text  # Bokeh inline: it opens offline like the run
    found = re.search(r"number of tasks: (\d+)", text)
    assert found, "the report's summary names no task count"
    tasks = int(found.group(1))
    run = load_run(run_dir)
    answered = int(run.requests["ok"].sum())
    # One task per answered request (direct executor); requests Locust dropped at its
    # stop may have finished their tasks unrecorded, at most one per user.
    assert answered <= tasks <= answered + USERS


def _parquet_sums(run_dir: Path, source: str, metric: str, labels: str = "") -> pd.Series:
    m = pd.read_parquet(run_dir / "metrics.parquet")
    rows = m[(m["source"] == source) & (m["metric"] == metric)]
    if labels:
        rows = rows[rows["labels"].str.contains(labels, regex=False)]
    return rows.groupby("t")["value"].sum().sort_index()


def _raw_samples(server: PrometheusServer, selector: str, at: float) -> pd.Series:
    """Every stored sample of ``selector`` (summed over series sharing a scrape time)."""
    result = server.query(f"{selector}[1h]", at=at)
    points: dict[float, float] = {}
    for series in result:
        for t, v in series["values"]:
            points[round(float(t), 3)] = points.get(round(float(t), 3), 0.0) + float(v)
    return pd.Series(points).sort_index()


def _bracketed(prom: pd.Series, parquet: pd.Series) -> list[str]:
    """Samples of ``prom`` outside what ``parquet`` saw MARGIN_S before and after them."""
    t = parquet.index.to_numpy(dtype=float)
    v = parquet.to_numpy(dtype=float)
    bad = []
    for tq, vq in prom.items():
        before, after = v[t <= tq - MARGIN_S], v[t >= tq + MARGIN_S]
        if len(before) and vq < before[-1] - 1e-9:
            bad.append(f"{tq:.3f}: {vq} < {before[-1]} (the scraper, earlier)")
        if len(after) and vq > after[0] + 1e-9:
            bad.append(f"{tq:.3f}: {vq} > {after[0]} (the scraper, later)")
    return bad


def test_prometheus_data_opens_again_and_agrees_with_metrics_parquet(
    monitored: Monitored, reopened: PrometheusServer
) -> None:
    run_dir = _run(monitored)
    record = json.loads((run_dir / "run.json").read_text())["monitoring"]["prometheus"]
    events = pd.read_parquet(run_dir / "events.parquet").set_index("name")["t"]
    start, stop = record["scraping"], record["stopped"]

    requests = _parquet_sums(run_dir, "service", "scalelab_requests_total")
    raw = _raw_samples(reopened, 'scalelab_requests_total{job="scalelab-service"}', stop)
    during = raw[(raw.index >= events["load_start"]) & (raw.index <= events["load_stop"])]
    assert len(during) >= 3 and during.iloc[-1] > during.iloc[0] > 0
    assert _bracketed(raw, requests) == []
    # After the load the counter stands still: both saw the same total.
    assert raw.iloc[-1] == requests.iloc[-1] == requests.max()

    # A range query (what Grafana asks) gives at each step the latest stored sample.
    ranged = reopened.query_range(
        'sum(scalelab_requests_total{job="scalelab-service"})', start, stop, 1.0
    )
    (series,) = ranged
    steps = np.array([float(t) for t, _ in series["values"]])
    values = np.array([float(v) for _, v in series["values"]])
    assert len(steps) >= 3
    latest = raw.reindex(raw.index.union(steps)).ffill().loc[steps].to_numpy()
    assert values == pytest.approx(latest)

    # The worker's own CPU counter, a series from another process.
    cpu = _parquet_sums(run_dir, "worker", "process_cpu_seconds_total")
    raw_cpu = _raw_samples(reopened, 'process_cpu_seconds_total{job="dask-worker"}', stop)
    assert len(raw_cpu) >= 3 and raw_cpu.iloc[-1] > raw_cpu.iloc[0]
    assert _bracketed(raw_cpu, cpu) == []
    # The service exports its own process's CPU too.
    assert len(_raw_samples(reopened, 'process_cpu_seconds_total{job="scalelab-service"}', stop))


_GRAFANA_VARIABLES = {"$__rate_interval": "4s", "$__interval": "1s", "$run": ".*"}
_METRIC_NAME = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")


def _expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def test_every_grafana_query_runs_on_the_runs_prometheus(
    monitored: Monitored, reopened: PrometheusServer
) -> None:
    run_dir = _run(monitored)
    scraped = pd.read_parquet(run_dir / "metrics.parquet")
    produced = set(scraped["metric"]) | {"up"}
    moved = scraped.groupby("metric")["value"].agg(lambda v: bool((v != 0).any()))
    still = set(moved.index[~moved.to_numpy(dtype=bool)])
    events = pd.read_parquet(run_dir / "events.parquet").set_index("name")["t"]
    dashboard = json.loads(DASHBOARD.read_text())
    checked = empty_allowed = 0
    for title, expr in _expressions(dashboard):
        query = expr
        for variable, value in _GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, f"{title}: a variable the test does not know: {expr}"
        result = reopened.query_range(query, events["load_start"], events["load_stop"], 1.0)
        names = set(_METRIC_NAME.findall(query))
        assert names, f"{title}: no metric in {expr}"
        if names <= produced:
            values = [float(v) for series in result for _, v in series["values"]]
            assert values, f"{title}: no data for {expr}, though the run scraped {names}"
            # A ratio of counters that never moved (no cache reads here) is rightly NaN.
            if not names & still:
                assert np.isfinite(values).any(), f"{title}: only NaN from {expr}"
            checked += 1
        else:
            empty_allowed += 1  # e.g. cache hits, which a /task/cpu run never exports
    assert checked >= 20 and empty_allowed <= 3


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def test_report_reads_well_in_chromium(monitored: Monitored, tmp_path: Path) -> None:
    if chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    report = monitored.result.report_path
    assert report is not None
    text = report.read_text()
    assert 'status: <span class="badge ok">ok</span>' in text  # the final status, not 'running'
    links = _Links()
    links.feed(text)
    files = [h for h in links.hrefs if not h.startswith("#")]
    assert any(h.endswith("dask-report.html") for h in files)
    assert any(h.endswith("locust/report.html") for h in files)
    for href in files:
        assert (report.parent / unquote(href)).is_file(), href
    for anchor in (h for h in links.hrefs if h.startswith("#")):
        assert f'id="{anchor[1:]}"' in text
    page = inspect_page(report.resolve().as_uri(), tmp_path / "report.png")
    assert page.problems == []
    assert page.images >= 2 and page.screenshot is not None and page.screenshot.stat().st_size
