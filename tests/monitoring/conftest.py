"""Fixtures of the monitoring tests: one real run with Prometheus and Dask's report, shared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scalelab.monitoring.prometheus import PrometheusServer, open_data

from .watched import Monitored, need_prometheus, run_watched


@pytest.fixture(scope="session")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    """The run (skips, saying why, without a prometheus server)."""
    need_prometheus()
    return run_watched(tmp_path_factory.mktemp("monitored"))


@pytest.fixture(scope="session")
def reopened(monitored: Monitored) -> Iterator[PrometheusServer]:
    """The run's Prometheus data, served again by a new prometheus process."""
    with open_data(monitored.result.runs[0].path) as server:
        yield server
