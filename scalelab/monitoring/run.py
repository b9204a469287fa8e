"""The monitoring a spec's ``[monitoring]`` section asks of one run, started and ended with it.

The runner calls four hooks: :meth:`RunMonitoring.prepare` before the service
starts (Prometheus starts, with no targets yet), :meth:`RunMonitoring.start`
once the service is healthy (Prometheus gets its targets, and the load waits
until every one has been scraped; Dask starts recording its task stream),
:meth:`RunMonitoring.finish` once the load has ended and before the service
stops (Dask's report of the measured window is written; Prometheus is stopped,
closing its data cleanly), and :meth:`RunMonitoring.record` for ``run.json``.
A Prometheus that cannot start fails the run before its load (the spec asked
for it); a Dask report that cannot be written is a problem listed in
``run.json``, since the run's own measurements are whole without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalelab.errors import RunError, SpecError
from scalelab.experiment.events import EventLog

if TYPE_CHECKING:
    from scalelab.experiment.spec import MonitoringSpec
    from scalelab.monitoring.dask_report import DaskReport
    from scalelab.monitoring.prometheus import PrometheusServer, WorkerDiscovery

PROMETHEUS_DIR = "prometheus"
SCRAPE_WAIT_S = 20.0
"""Longest the load waits for Prometheus to scrape every target once."""
DASK_REPORT = "dask-report.html"


def check_monitoring(specs: list[MonitoringSpec] | list[Any]) -> None:
    """Before anything starts: what the specs' ``[monitoring]`` asks for can be had.

    ``specs`` are the runs' specs (or their ``monitoring`` sections); a missing
    ``prometheus`` binary is a :class:`SpecError` naming the field and the fix.
    """
    sections = [getattr(s, "monitoring", s) for s in specs]
    if any(section.prometheus for section in sections):
        from scalelab.monitoring.prometheus import require_binary

        try:
            require_binary("monitoring.prometheus = true")
        except RunError as exc:
            raise SpecError(str(exc)) from None


class RunMonitoring:
    """Prometheus and Dask's performance report for one run, as ``spec`` asks."""

    def __init__(self, spec: MonitoringSpec, run_dir: Path, labels: dict[str, str]) -> None:
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.labels = dict(labels)
        self.prometheus: PrometheusServer | None = None
        self.discovery: WorkerDiscovery | None = None
        self.dask: DaskReport | None = None
        self.problems: list[str] = []
        self._record: dict[str, Any] = {}

    @property
    def enabled(self) -> bool:
        """True when the spec asks for anything."""
        return self.spec.prometheus or self.spec.dask_report

    def prepare(self, events: EventLog) -> None:
        """Before the service starts: start Prometheus, with no targets yet.

        Prometheus takes targets in steps of about 5 s; starting it while the
        service and its cluster start saves most of that wait.
        """
        if not self.spec.prometheus:
            return
        from scalelab.monitoring.prometheus import PrometheusServer, write_config

        folder = self.run_dir / PROMETHEUS_DIR
        config = write_config(folder, self.spec.scrape_interval_s)
        # Known before it starts, so that an interrupted start is still stopped and recorded.
        self.prometheus = PrometheusServer(folder / "data", config)
        record: dict[str, Any] = {
            "url": self.prometheus.url,
            "config": f"{PROMETHEUS_DIR}/prometheus.yml",
            "data": f"{PROMETHEUS_DIR}/data",
            "scrape_interval_s": self.spec.scrape_interval_s,
            "started": None,
            "scraping": None,
            "stopped": None,
        }
        self._record["prometheus"] = record
        self.prometheus.start()
        record["started"] = events.add("note", "prometheus_start", url=self.prometheus.url)

    def start(self, service_url: str, health: dict[str, Any], events: EventLog) -> None:
        """Once the service is healthy: give Prometheus its targets and wait until it scrapes
        them all; start Dask's task stream recording."""
        if self.prometheus is not None:
            self._scrape(service_url, health.get("scheduler_metrics"), events)
        if self.spec.dask_report:
            from scalelab.monitoring.dask_report import DaskReport

            scheduler = health.get("scheduler")
            try:
                if not scheduler:
                    raise RuntimeError("the service reported no scheduler address")
                self.dask = DaskReport(str(scheduler)).start()
                events.add("note", "dask_report_start", scheduler=scheduler)
            except Exception as exc:
                self.problems.append(f"Dask performance report not started: {exc}")
                self._record["dask_report"] = {"file": None, "error": str(exc)}

    def _scrape(self, service_url: str, scheduler_metrics: str | None, events: EventLog) -> None:
        from scalelab.monitoring.prometheus import (
            SCHEDULER_JOB,
            SERVICE_JOB,
            WORKER_JOB,
            WorkerDiscovery,
            write_targets,
        )

        assert self.prometheus is not None
        folder = self.run_dir / PROMETHEUS_DIR
        write_targets(folder, SERVICE_JOB, {"service": service_url}, self.labels)
        want = {SERVICE_JOB: 1}
        if scheduler_metrics:
            write_targets(folder, SCHEDULER_JOB, {"scheduler": scheduler_metrics}, self.labels)
            self.discovery = WorkerDiscovery(scheduler_metrics, folder, self.labels).start()
            want[SCHEDULER_JOB] = 1
            want[WORKER_JOB] = max(1, len(self.discovery.workers))
        missing, health = self.prometheus.wait_for_scrapes(want, SCRAPE_WAIT_S)
        scraping = events.add("note", "prometheus_scraping", missing=missing, health=health)
        record = self._record["prometheus"]
        record.update(jobs=list(want), scraping=scraping)
        if missing:
            self.problems.append(
                f"Prometheus had not scraped every target {SCRAPE_WAIT_S:g} s after the "
                f"service was ready ({'; '.join(missing)}); its data may miss the load's start"
            )

    def running_info(self) -> dict[str, Any]:
        """What ``run.json`` says while the run goes on (Prometheus's address, for one)."""
        return {k: dict(v) for k, v in self._record.items()}

    def finish(self, window_start: float | None, code: str, events: EventLog) -> None:
        """Write Dask's report of ``window_start`` to now, then stop Prometheus. Never raises."""
        if self.dask is not None:
            try:
                self.dask.write(self.run_dir / DASK_REPORT, window_start, code)
                self._record["dask_report"] = {
                    "file": DASK_REPORT,
                    "window_start": window_start,
                    "error": None,
                }
                events.add("note", "dask_report_written", window_start=window_start)
            except Exception as exc:
                self.problems.append(f"Dask performance report not written: {exc}")
                self._record["dask_report"] = {"file": None, "error": str(exc)}
            finally:
                self.dask.close()
                self.dask = None
        self.stop(events)

    def stop(self, events: EventLog | None = None) -> None:
        """Stop Prometheus and the worker discovery (again: harmless). Never raises."""
        if self.discovery is not None:
            self.discovery.stop()
            self.discovery = None
        if self.dask is not None:
            self.dask.close()
            self.dask = None
        if self.prometheus is not None:
            server, self.prometheus = self.prometheus, None
            try:
                server.stop()
            except Exception as exc:
                self.problems.append(f"stopping prometheus: {exc}")
            stopped = events.add("note", "prometheus_stop") if events is not None else None
            record = self._record.get("prometheus")
            if record is not None:
                record["stopped"] = stopped
                record["exit_code"] = server.child.poll() if server.child else None

    def record(self) -> dict[str, Any] | None:
        """The ``monitoring`` entry of ``run.json``: None when the spec asked for nothing."""
        if not self.enabled:
            return None
        out = self.running_info()
        out.setdefault("prometheus", None)
        out.setdefault("dask_report", None)
        return out
