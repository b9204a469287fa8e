"""Worker faults on an external cluster: ``dask scheduler`` and ``dask worker`` processes,
one worker with a nanny and one without, served by a service started with ``--scheduler``."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import psutil
import pytest
from experiment.leaks import mentioning

from scalelab.config import ServiceConfig
from scalelab.ports import free_port
from scalelab.procs import Child, wait_until
from scalelab.service.process import ServiceProcess, start_service

from .conftest import start_fault

pytestmark = pytest.mark.integration


@pytest.fixture
def external(tmp_path) -> Iterator[tuple[ServiceProcess, str, list[Child]]]:
    """A scheduler, a worker under a nanny (name nanny) and one without (name bare)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    children = [
        Child(
            [*dask, "--port", str(port), "--dashboard-address", ":0", "--no-show"],
            "dask-scheduler",
            log_path=tmp_path / "scheduler.log",
        )
    ]
    worker = [
        sys.executable,
        "-m",
        "distributed.cli.dask_worker",
        address,
        "--nthreads",
        "1",
        "--dashboard-address",
        ":0",
    ]
    children.append(
        Child(
            [*worker, "--nanny", "--name", "nanny"],
            "dask-worker-nanny",
            log_path=tmp_path / "nanny.log",
        )
    )
    children.append(
        Child(
            [*worker, "--no-nanny", "--name", "bare"],
            "dask-worker-bare",
            log_path=tmp_path / "bare.log",
        )
    )
    try:
        config = ServiceConfig.model_validate({"cluster": {"scheduler": address}})
        with start_service(config) as service:
            assert wait_until(lambda: len(names(service)) == 2, 30.0, 0.2), names(service)
            yield service, address, children
    finally:
        for child in children:
            child.stop(5.0)


def names(service: ServiceProcess) -> dict[str, dict]:
    listed = httpx.get(f"{service.url}/admin/workers", timeout=30).json()["workers"]
    return {w["name"]: w for w in listed}


@pytest.mark.serial  # a 0.5 s pause is looked at while it lasts: run alone
def test_kills_with_and_without_a_nanny_and_a_pause(external) -> None:
    service, address, children = external
    everything = [psutil.Process(c.pid) for c in children]
    everything += [p for c in children for p in psutil.Process(c.pid).children(recursive=True)]
    before = names(service)
    assert before["nanny"]["nanny"] and not before["bare"]["nanny"]

    start_fault(service, "worker_kill", worker=before["nanny"]["address"])
    assert wait_until(lambda: not psutil.pid_exists(before["nanny"]["pid"]), 5.0)
    assert wait_until(  # its nanny started a new worker process
        lambda: names(service).get("nanny", {}).get("pid") not in (None, before["nanny"]["pid"]),
        30.0,
        0.3,
    )

    # Paused 2 s, and the stop awaited: it takes effect when the target next runs, and a
    # busy machine once showed it still running right after the call (0.5 s pause).
    start_fault(service, "worker_pause", worker=before["bare"]["address"], duration_s=2.0)
    bare = psutil.Process(before["bare"]["pid"])
    assert wait_until(lambda: bare.status() == psutil.STATUS_STOPPED, 1.5, 0.02), bare.status()
    assert wait_until(
        lambda: psutil.Process(before["bare"]["pid"]).status() != psutil.STATUS_STOPPED, 5.0
    )

    start_fault(service, "worker_kill", worker=before["bare"]["address"])
    assert wait_until(lambda: children[2].poll() is not None, 10.0)  # no nanny: it is gone
    assert wait_until(lambda: set(names(service)) == {"nanny"}, 20.0, 0.3)
    assert httpx.get(f"{service.url}/task/cpu", params={"units": 1}, timeout=30).status_code == 200

    service.stop()
    for child in children:
        child.stop(5.0)
    left = [p.pid for p in everything if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left and not mentioning(address)  # the restarted worker went too
