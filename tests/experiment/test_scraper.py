"""The metrics scraper: Prometheus text into long-format rows, and scraping a live endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scalelab.experiment.scraper import (
    Scraper,
    format_labels,
    identity_url,
    parse_metrics,
    worker_metric_urls,
    write_metrics,
)

TEXT = """\
# HELP scalelab_requests_total Requests by endpoint and status
# TYPE scalelab_requests_total counter
scalelab_requests_total{endpoint="/task/cpu",status="200"} 42.0
scalelab_requests_created{endpoint="/task/cpu",status="200"} 1.7e9
# HELP scalelab_in_flight In-flight requests
# TYPE scalelab_in_flight gauge
scalelab_in_flight 3.0
# HELP scalelab_latency_seconds Latency
# TYPE scalelab_latency_seconds histogram
scalelab_latency_seconds_bucket{le="0.1",endpoint="/ping"} 5.0
scalelab_latency_seconds_bucket{le="+Inf",endpoint="/ping"} 6.0
scalelab_latency_seconds_count{endpoint="/ping"} 6.0
scalelab_latency_seconds_sum{endpoint="/ping"} 0.3
# TYPE odd gauge
odd NaN
"""


def test_parse_metrics_long_format() -> None:
    rows = parse_metrics(TEXT, 12.5, "service")
    by_name = {(r[2], r[3]): r[4] for r in rows}
    assert by_name[("scalelab_requests_total", "endpoint=/task/cpu,status=200")] == 42.0
    assert by_name[("scalelab_in_flight", "")] == 3.0
    assert by_name[("scalelab_latency_seconds_bucket", "endpoint=/ping,le=+Inf")] == 6.0
    assert by_name[("scalelab_latency_seconds_sum", "endpoint=/ping")] == 0.3
    assert not any(r[2].endswith("_created") for r in rows)  # creation stamps are skipped
    assert not any(r[2] == "odd" for r in rows)  # NaN is not a measurement
    assert all(r[0] == 12.5 and r[1] == "service" for r in rows)
    tagged = parse_metrics("x 1\n", 1.0, "worker", {"worker": "tcp://a:1"})
    assert tagged == [(1.0, "worker", "x", "worker=tcp://a:1", 1.0)]


def test_labels_are_sorted() -> None:
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == ""


def test_worker_discovery_from_identity() -> None:
    assert (
        identity_url("http://127.0.0.1:8787/metrics") == "http://127.0.0.1:8787/json/identity.json"
    )
    identity = {
        "workers": {
            "tcp://127.0.0.1:4001": {"host": "127.0.0.1", "services": {"dashboard": 5001}},
            "tcp://127.0.0.1:4002": {"host": "127.0.0.1", "services": {}},
        }
    }
    assert worker_metric_urls(identity) == {"tcp://127.0.0.1:4001": "http://127.0.0.1:5001/metrics"}


def test_write_metrics_schema(tmp_path: Path) -> None:
    write_metrics(tmp_path / "m.parquet", [])
    empty = pq.read_table(tmp_path / "m.parquet")
    assert empty.num_rows == 0
    assert empty.column_names == ["t", "source", "metric", "labels", "value"]
    write_metrics(tmp_path / "m.parquet", parse_metrics(TEXT, 1.0, "service"))
    assert pq.read_table(tmp_path / "m.parquet").num_rows == 6


class _Metrics(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's API
        if self.path != "/metrics":
            self.send_response(404)
            self.end_headers()
            return
        type(self).hits += 1
        body = f"scalelab_in_flight {type(self).hits}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def test_scraper_thread_polls_and_survives_a_dead_source(metrics_url: str) -> None:
    dead = metrics_url.rsplit(":", 1)[0] + ":1/metrics"
    before = time.time()
    with Scraper(metrics_url, scheduler_metrics_url=dead, interval_s=0.1) as scraper:
        time.sleep(0.55)
    rows = scraper.snapshot()
    service_rows = [r for r in rows if r[1] == "service"]
    assert 3 <= len(service_rows) <= 10
    assert [r[4] for r in service_rows] == sorted(r[4] for r in service_rows)  # increasing
    assert all(before <= r[0] <= time.time() for r in rows)
    assert scraper.failures >= 3  # the dead scheduler, every tick
    assert not scraper._thread or not scraper._thread.is_alive()


def test_stop_scrapes_once_more_so_counters_are_read_after_the_load(metrics_url: str) -> None:
    scraper = Scraper(metrics_url, interval_s=60.0).start()  # one scrape at once, then none
    time.sleep(0.2)
    stopped = time.time()
    scraper.stop()
    times = [r[0] for r in scraper.snapshot() if r[1] == "service"]
    assert scraper.scrapes == 2 and len(times) == 2
    assert times[0] < stopped <= times[1]
    scraper.stop()  # stopping again scrapes no more
    assert scraper.scrapes == 2
