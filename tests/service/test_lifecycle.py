"""Starting and stopping the service: refusals, failures, SIGTERM, and an external cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from scalelab.config import ServiceConfig
from scalelab.errors import RunError
from scalelab.ports import free_port
from scalelab.procs import Child, group_members, wait_until
from scalelab.service.process import start_service

pytestmark = pytest.mark.integration

DASK = str(Path(sys.executable).parent / "dask")


def test_non_loopback_without_token_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SCALELAB_ADMIN_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-m", "scalelab", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert "--host 0.0.0.0" in done.stderr and "--admin-token" in done.stderr


def test_a_service_that_cannot_start_raises_with_its_log(tmp_path: Path) -> None:
    config = ServiceConfig.model_validate({"executor": {"kind": "no_such_module_q:Executor"}})
    start = time.monotonic()
    with pytest.raises(RunError) as info:
        start_service(config, log_path=tmp_path / "service.log", ready_timeout_s=60)
    assert "exited with status 2" in str(info.value)
    assert "executor.kind" in str(info.value)  # the log tail names the field
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [
        (signal.SIGTERM, False),  # the service alone: it must end its workers itself
        (signal.SIGINT, True),  # Ctrl-C in a terminal reaches the whole group
    ],
    ids=["sigterm", "ctrl-c"],
)
def test_a_stop_signal_ends_the_service_and_its_workers(
    tmp_path: Path, sig: signal.Signals, to_group: bool
) -> None:
    config = ServiceConfig.model_validate({"cluster": {"workers": 2, "threads_per_worker": 1}})
    service = start_service(config, log_path=tmp_path / "service.log")
    try:
        pgid = service.child.pid
        assert httpx.get(f"{service.url}/task/cpu?units=1", timeout=30).status_code == 200
        members = group_members(pgid)
        assert len(members) >= 3, members  # the service and its two worker processes
        start = time.monotonic()
        if to_group:
            os.killpg(pgid, sig)
        else:
            os.kill(pgid, sig)
        assert service.child.wait(20) == 0
        assert time.monotonic() - start < 15
        assert wait_until(lambda: not group_members(pgid), 3.0), group_members(pgid)
        assert "Traceback" not in (tmp_path / "service.log").read_text()
    finally:
        service.stop(2.0)


def test_serve_against_a_cluster_started_by_hand(tmp_path: Path) -> None:
    sched_port, dash_port, http_port = free_port(), free_port(), free_port()
    address = f"tcp://127.0.0.1:{sched_port}"
    scheduler = Child(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(sched_port)]
        + ["--dashboard-address", f"127.0.0.1:{dash_port}"],
        name="scheduler",
        log_path=tmp_path / "scheduler.log",
    )
    service = Child(
        [sys.executable, "-m", "scalelab", "serve", "--scheduler", address]
        + ["--port", str(http_port), "--workers", "5"],
        name="service",
        log_path=tmp_path / "service.log",
        env={"PYTHONUNBUFFERED": "1"},
    )
    worker: Child | None = None
    url = f"http://127.0.0.1:{http_port}"

    def health_status() -> int:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code
        except httpx.HTTPError:
            return 0

    try:
        # A scheduler without workers is not healthy.
        assert wait_until(lambda: health_status() != 0, 60, 0.2), service.log_tail()
        assert health_status() == 503
        assert httpx.get(f"{url}/health", timeout=10).json()["workers"] == 0
        worker = Child(
            [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1"]
            + ["--dashboard-address", "127.0.0.1:0", "--name", "by-hand"],
            name="worker",
            log_path=tmp_path / "worker.log",
        )
        assert wait_until(lambda: health_status() == 200, 60, 0.2), worker.log_tail()
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["scheduler"] == address and health["workers"] == 1
        assert health["scheduler_metrics"] == f"http://127.0.0.1:{dash_port}/metrics"
        response = httpx.get(f"{url}/task/cpu?units=10", timeout=30)
        assert response.status_code == 200
        assert response.headers["x-worker"].startswith("tcp://127.0.0.1:")
        banner = (tmp_path / "service.log").read_text()
        assert f"listening on {url} (scheduler {address}" in banner
        # Stopping the service leaves the cluster it did not start alone.
        assert service.stop(15) == 0
        assert scheduler.alive() and worker.alive()
    finally:
        service.stop(2)
        if worker is not None:
            worker.stop(10)
        scheduler.stop(10)
    assert not group_members(worker.pid) and not group_members(scheduler.pid)


def test_a_port_in_use_is_refused_before_the_cluster_starts() -> None:
    """The port is claimed first, so a taken port fails fast with a message naming it."""
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "scalelab", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"--port {port}: cannot listen there" in result.stderr
    assert "dask" not in result.stdout.lower()
