"""A background thread that scrapes Prometheus ``/metrics`` (once a second by default) into rows.

It polls the service's ``/metrics`` and, when the service reports one, the Dask
scheduler's ``/metrics``; the workers' ``/metrics`` are found through the
scheduler's ``/json/identity.json`` and scraped where reachable. Rows carry
``time.time()`` so they line up with the client's records (docs/results-format.md).
A source that does not answer is skipped for that tick: scraping never stops a run.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from scalelab.prometheus_text import samples

COLUMNS = ("t", "source", "metric", "labels", "value")
Row = tuple[float, str, str, str, float]


def format_labels(labels: dict[str, str]) -> str:
    """Labels as ``k=v,k=v`` sorted by key; empty when none."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_metrics(
    text: str, t: float, source: str, extra_labels: dict[str, str] | None = None
) -> list[Row]:
    """Prometheus text as rows ``(t, source, metric, labels, value)``.

    Only finite numeric samples are kept, and ``*_created`` samples (timestamps of
    counter creation, not measurements) are skipped.
    """
    rows: list[Row] = []
    for sample in samples(text):
        if sample.name.endswith("_created"):
            continue
        value = sample.value
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        value = float(value)
        if math.isnan(value):
            continue
        labels = dict(sample.labels)
        if extra_labels:
            labels.update(extra_labels)
        rows.append((t, source, sample.name, format_labels(labels), value))
    return rows


def identity_url(scheduler_metrics_url: str) -> str:
    """The scheduler's identity JSON beside its ``/metrics`` URL."""
    base = scheduler_metrics_url.rsplit("/metrics", 1)[0]
    return base + "/json/identity.json"


def worker_metric_urls(identity: dict[str, Any]) -> dict[str, str]:
    """Worker address -> its ``/metrics`` URL, from the scheduler's identity JSON."""
    urls: dict[str, str] = {}
    for address, info in (identity.get("workers") or {}).items():
        if not isinstance(info, dict):
            continue
        port = (info.get("services") or {}).get("dashboard")
        host = info.get("host")
        if port and host:
            urls[str(address)] = f"http://{host}:{port}/metrics"
    return urls


@dataclass
class Scraper:
    """Scrape the service (and Dask, when known) every ``interval_s`` in a daemon thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`; :meth:`frame`
    returns what was collected so far, even after a failure.
    """

    service_metrics_url: str
    scheduler_metrics_url: str | None = None
    interval_s: float = 1.0
    timeout_s: float = 0.8
    max_rows: int = 2_000_000
    workers: bool = True
    rows: list[Row] = field(default_factory=list)
    scrapes: int = 0
    failures: int = 0
    dropped_rows: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._worker_urls: dict[str, str] = {}
        self._last_discovery = -math.inf

    def start(self) -> Scraper:
        """Start scraping in the background (the first scrape happens at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="scalelab-scraper", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0, final: bool = True) -> None:
        """Stop the thread and wait for it (at most ``timeout_s``), then scrape once more.

        The last scrape (unless ``final`` is False) reads every counter after the
        load has ended, so a figure over a window that ends with the load, such
        as ``origin_calls``, has a scrape at or after its end.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if final and not self._thread.is_alive():
                with httpx.Client(timeout=self.timeout_s) as client:
                    self.scrape_once(client)
            self._thread = None

    def __enter__(self) -> Scraper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            next_t = time.monotonic()
            while not self._stop.is_set():
                self.scrape_once(client)
                next_t += self.interval_s
                delay = next_t - time.monotonic()
                if delay < 0:  # fell behind: skip ticks rather than burst
                    next_t = time.monotonic()
                    delay = 0
                self._stop.wait(delay)

    def _sources(self, client: httpx.Client) -> list[tuple[str, str, dict[str, str] | None]]:
        sources: list[tuple[str, str, dict[str, str] | None]] = [
            ("service", self.service_metrics_url, None)
        ]
        if self.scheduler_metrics_url:
            sources.append(("scheduler", self.scheduler_metrics_url, None))
            if self.workers:
                now = time.monotonic()
                if now - self._last_discovery > 10.0:
                    self._last_discovery = now
                    try:
                        resp = client.get(identity_url(self.scheduler_metrics_url))
                        resp.raise_for_status()
                        self._worker_urls = worker_metric_urls(resp.json())
                    except (httpx.HTTPError, ValueError):
                        pass
                for address, url in sorted(self._worker_urls.items()):
                    sources.append(("worker", url, {"worker": address}))
        return sources

    def scrape_once(self, client: httpx.Client) -> int:
        """Scrape every source once; return the number of rows added."""
        added = 0
        for source, url, extra in self._sources(client):
            t = time.time()
            try:
                resp = client.get(url)
                resp.raise_for_status()
                rows = parse_metrics(resp.text, t, source, extra)
            except (httpx.HTTPError, ValueError):
                self.failures += 1
                continue
            with self._lock:
                room = self.max_rows - len(self.rows)
                if room < len(rows):
                    self.dropped_rows += len(rows) - max(room, 0)
                    rows = rows[: max(room, 0)]
                self.rows.extend(rows)
            added += len(rows)
        self.scrapes += 1
        return added

    def snapshot(self) -> list[Row]:
        """A copy of the rows collected so far."""
        with self._lock:
            return list(self.rows)

    def write(self, path: str | Path) -> Path:
        """Write the rows so far as ``metrics.parquet`` (atomically)."""
        return write_metrics(path, self.snapshot())


def write_metrics(path: str | Path, rows: Iterable[Row]) -> Path:
    """Long-format metrics rows as a Parquet file with the documented schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scalelab.fileio import atomic_path

    rows = list(rows)
    schema = pa.schema(
        [
            ("t", pa.float64()),
            ("source", pa.string()),
            ("metric", pa.string()),
            ("labels", pa.string()),
            ("value", pa.float64()),
        ]
    )
    columns: list[list[Any]] = [[row[i] for row in rows] for i in range(len(COLUMNS))]
    table = pa.Table.from_arrays(
        [pa.array(col, type=schema.field(i).type) for i, col in enumerate(columns)],
        schema=schema,
    )
    target = Path(path)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return target
