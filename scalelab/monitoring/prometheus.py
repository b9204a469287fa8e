"""A real Prometheus server for a run: its scrape configuration, its process and its queries.

The run's own scraper always writes ``metrics.parquet``; a spec with
``[monitoring] prometheus = true`` also starts Debian's (or any) ``prometheus``
binary for the run, on a free loopback port, scraping the service, the Dask
scheduler and every Dask worker, with its data kept in the run directory:

    <run>/prometheus/prometheus.yml   the scrape configuration scalelab wrote
    <run>/prometheus/targets/         one file of targets per job (file-based discovery)
    <run>/prometheus/data/            the TSDB, which ``prometheus`` can open again
    <run>/prometheus/prometheus.log   the server's own log

Prometheus starts with the service, before its ports are known, and is given
its targets through those files once the service is healthy. Workers are
discovered through the scheduler and their file is rewritten when they change,
so a worker that is replaced during a run is scraped too. Locust exposes no
Prometheus metrics, so the load generator is not a target (its figures are in
``requests.parquet``). The server is a :class:`scalelab.procs.Child`: it ends
with the run, whatever ends the run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from scalelab.errors import RunError, ScaleLabError
from scalelab.fileio import write_text
from scalelab.ports import free_port
from scalelab.procs import Child

BINARY_ENV = "SCALELAB_PROMETHEUS"
"""Environment variable naming the ``prometheus`` executable (else it is looked up on PATH)."""

SERVICE_JOB = "scalelab-service"
SCHEDULER_JOB = "dask-scheduler"
WORKER_JOB = "dask-worker"
"""Prometheus job names of the three kinds of target (the Grafana dashboard selects by them)."""

READY_TIMEOUT_S = 30.0
"""Longest a Prometheus server may take to answer ``/-/ready``."""


def prometheus_binary() -> str | None:
    """The ``prometheus`` executable: ``$SCALELAB_PROMETHEUS``, else on PATH; None if neither."""
    named = os.environ.get(BINARY_ENV)
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("prometheus")


def require_binary(what: str = "[monitoring] prometheus = true") -> str:
    """The ``prometheus`` executable, or a :class:`RunError` that says how to get one."""
    found = prometheus_binary()
    if found is None:
        raise RunError(
            f"{what} needs the prometheus server: install it (apt-get install prometheus) "
            f"or name the executable in ${BINARY_ENV}; or set monitoring.prometheus = false"
        )
    return found


def host_port(url: str) -> str:
    """``http://127.0.0.1:8000/metrics`` gives ``127.0.0.1:8000``."""
    return urlsplit(url).netloc


JOBS = (SERVICE_JOB, SCHEDULER_JOB, WORKER_JOB)
TARGETS_DIR = "targets"
"""Folder beside ``prometheus.yml`` holding one file of targets per job."""


def scrape_config(interval_s: float = 1.0) -> dict[str, Any]:
    """The Prometheus configuration of a run: one job per kind of target, each from a file.

    Targets come through file-based discovery (``targets/<job>.json``), so
    Prometheus can start while the service is still starting (its ports, and
    those of its cluster, are not known yet) and follows workers that come and go.
    """
    interval = f"{round(interval_s * 1000)}ms"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": f"{round(min(interval_s, 10.0) * 800)}ms",
            "evaluation_interval": interval,
        },
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                # relative to this file's folder, so the run directory can move
                "file_sd_configs": [{"files": [f"{TARGETS_DIR}/{job}.json"]}],
            }
            for job in JOBS
        ],
    }


def write_targets(
    directory: str | Path, job: str, urls: dict[str, str], labels: dict[str, str] | None = None
) -> Path:
    """Write ``targets/<job>.json``: the ``/metrics`` URLs by name (a worker's is its address).

    Every target carries ``labels`` (for example ``experiment`` and ``run``, so
    that runs scraped into one Prometheus stay apart); a worker's also ``worker``.
    """
    entries = []
    for name, url in sorted(urls.items()):
        extra = {"worker": name} if job == WORKER_JOB else {}
        entries.append({"targets": [host_port(url)], "labels": {**(labels or {}), **extra}})
    path = Path(directory) / TARGETS_DIR / f"{job}.json"
    write_text(path, json.dumps(entries, indent=2) + "\n")
    return path


def write_config(directory: str | Path, interval_s: float = 1.0) -> Path:
    """Write ``prometheus.yml`` and empty target files in ``directory``; return the config."""
    import yaml

    folder = Path(directory)
    for job in JOBS:
        write_targets(folder, job, {})
    path = folder / "prometheus.yml"
    header = "# Written by scalelab for one run: the service, the Dask scheduler and workers.\n"
    write_text(path, header + yaml.safe_dump(scrape_config(interval_s), sort_keys=False))
    return path


class PrometheusServer:
    """A ``prometheus`` child process on a loopback port, with its data in ``data_dir``.

    ``config_file`` None starts it with no scrape targets, to read stored data
    (see :func:`open_data`). Use as a context manager, or :meth:`start` and
    :meth:`stop`; :meth:`query` and :meth:`query_range` call its HTTP API.
    """

    def __init__(
        self,
        data_dir: str | Path,
        config_file: str | Path | None = None,
        *,
        log_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config_file = Path(config_file) if config_file else None
        # Reading stored data leaves the run's folder as it was: config and log go elsewhere.
        self._scratch = None if config_file else Path(tempfile.mkdtemp(prefix="scalelab-prom-"))
        default_log = (self._scratch or self.data_dir.parent) / "prometheus.log"
        self.log_path = Path(log_path) if log_path else default_log
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or require_binary()
        self.url = f"http://{host}:{self.port}"
        self.child: Child | None = None

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> PrometheusServer:
        """Start the server and wait until it is ready; :class:`RunError` with its log if not."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.config_file
        if config is None:  # reading stored data: a configuration without targets
            assert self._scratch is not None
            config = self._scratch / "prometheus.yml"
            write_text(config, "global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        args = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
            "--log.level=warn",
        ]
        self.child = Child(args, name="prometheus", log_path=self.log_path)
        try:
            self._wait_ready(timeout_s)
        except BaseException:  # a failed start, or Ctrl-C while it starts, ends the process
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.child is not None
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.child.poll()
                if code is not None:
                    tail = self.child.log_tail(15)
                    raise RunError(
                        f"prometheus exited with status {code} at start; "
                        f"its log ({self.log_path}) ends with:\n{tail}"
                    )
                try:
                    response = client.get(f"{self.url}/-/ready")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    tail = self.child.log_tail(15)
                    raise RunError(
                        f"prometheus at {self.url} was not ready within {timeout_s:g} s "
                        f"(last /-/ready: {last}); its log ends with:\n{tail}"
                    )
                time.sleep(0.1)

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.child is not None and self.child.alive()

    def stop(self, deadline_s: float = 15.0) -> None:
        """SIGTERM (Prometheus then closes its TSDB cleanly), SIGKILL after ``deadline_s``."""
        if self.child is not None:
            self.child.stop(deadline_s)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start() if self.child is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def targets_up(self) -> dict[str, list[str]]:
        """Active targets by job, each with its health (``up``, ``down`` or ``unknown``)."""
        data = self._api("targets", {"state": "active"})
        out: dict[str, list[str]] = {}
        for target in data.get("activeTargets") or []:
            job = str(target.get("labels", {}).get("job") or target.get("scrapePool"))
            out.setdefault(job, []).append(str(target.get("health")))
        return out

    def wait_for_scrapes(
        self, jobs: dict[str, int], timeout_s: float
    ) -> tuple[list[str], dict[str, list[str]]]:
        """Wait until each job has at least ``jobs[job]`` targets Prometheus has scraped.

        Prometheus applies new targets in steps of about 5 s, so a target is
        first scraped seconds after it was written. A scrape that failed
        (``down``, e.g. too slow on a busy machine) still counts: Prometheus is
        scraping it. Returns what is still missing when ``timeout_s`` runs out
        (empty when none) and the targets' health by job.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                health = self.targets_up()
            except (ScaleLabError, httpx.HTTPError) as exc:
                health, missing = {}, [f"targets API: {exc}"]
            else:
                missing = [
                    f"{job}: {sum(h != 'unknown' for h in health.get(job, []))} of {want} scraped"
                    for job, want in jobs.items()
                    if sum(h != "unknown" for h in health.get(job, [])) < want
                ]
            if not missing or time.monotonic() > deadline:
                return missing, health
            time.sleep(0.2)

    def _api(self, path: str, params: dict[str, Any]) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30.0)
        try:
            body = response.json()
        except ValueError:
            body = {"status": "error", "error": response.text[:300]}
        if body.get("status") != "success":
            raise ScaleLabError(
                f"Prometheus {path} of {params.get('query')!r} failed: "
                f"{body.get('errorType', response.status_code)}: {body.get('error')}"
            )
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: the result list (each ``metric`` labels and ``value`` [t, text])."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._api("query", params)
        result = data.get("result")
        return result if isinstance(result, list) else [{"metric": {}, "value": result}]

    def query_range(
        self, expr: str, start: float, end: float, step_s: float = 1.0
    ) -> list[dict[str, Any]]:
        """A range query: one entry per series, ``metric`` labels and ``values`` [[t, text]...]."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step_s}
        result: list[dict[str, Any]] = self._api("query_range", params)["result"]
        return result


def open_data(data_dir: str | Path, port: int | None = None) -> PrometheusServer:
    """Start Prometheus on a run's stored data (no scraping), ready to be queried."""
    path = Path(data_dir)
    if (path / "prometheus" / "data").is_dir():
        path = path / "prometheus" / "data"  # a run directory was given
    if not (path / "wal").is_dir():  # every Prometheus TSDB has its write-ahead log
        raise ScaleLabError(
            f"{data_dir}: no Prometheus data here; give a run directory of a run whose spec "
            "had [monitoring] prometheus = true, or its prometheus/data folder"
        )
    return PrometheusServer(path, None, port=port)


class WorkerDiscovery:
    """Keep ``targets/dask-worker.json`` in step with the scheduler's workers (a thread)."""

    def __init__(
        self,
        scheduler_metrics_url: str,
        directory: str | Path,
        labels: dict[str, str] | None = None,
        interval_s: float = 2.0,
    ) -> None:
        self.scheduler_metrics_url = scheduler_metrics_url
        self.directory = Path(directory)
        self.labels = dict(labels or {})
        self.interval_s = interval_s
        self.workers: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scalelab-prom-sd", daemon=True)

    def discover(self) -> dict[str, str]:
        """Ask the scheduler once; rewrite the workers' targets when the set changed."""
        from scalelab.experiment.scraper import identity_url, worker_metric_urls

        try:
            response = httpx.get(identity_url(self.scheduler_metrics_url), timeout=2.0)
            response.raise_for_status()
            found = worker_metric_urls(response.json())
        except (httpx.HTTPError, ValueError):
            return self.workers
        if found != self.workers:
            self.workers = found
            write_targets(self.directory, WORKER_JOB, found, self.labels)
        return found

    def start(self) -> WorkerDiscovery:
        """Discover now, then every ``interval_s`` until :meth:`stop`."""
        self.discover()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.discover()
