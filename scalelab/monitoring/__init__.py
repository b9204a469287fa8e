"""What a run records besides its own measurements: a real Prometheus and Dask's own report.

- :mod:`.prometheus`: the scrape configuration of a run (service, Dask scheduler
  and workers), a ``prometheus`` server as a child process with its data in the
  run directory, PromQL queries, and :func:`~.prometheus.open_data` to read a
  finished run's data again.
- :mod:`.dask_report`: Dask's ``performance_report`` of the measured window.
- :mod:`.run`: the hooks the experiment runner calls (``[monitoring]`` in a spec).

The Grafana dashboard for these series ships in ``monitoring/grafana/`` at the
repository's root; docs/observability.md tells how to use them together.
"""

from __future__ import annotations

from scalelab.monitoring.dask_report import DaskReport
from scalelab.monitoring.prometheus import (
    PrometheusServer,
    open_data,
    prometheus_binary,
    scrape_config,
    write_config,
)
from scalelab.monitoring.run import RunMonitoring

__all__ = [
    "DaskReport",
    "PrometheusServer",
    "RunMonitoring",
    "open_data",
    "prometheus_binary",
    "scrape_config",
    "write_config",
]
