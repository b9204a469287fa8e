"""The service's Dask cluster: start or connect, describe, and close with a deadline.

Without ``cluster.scheduler`` the service starts an embedded LocalCluster (its
dashboard on a free port, logs quiet); with it, the service connects to an
existing scheduler started by ``dask scheduler`` and ``dask worker``. Closing is
bounded: after the deadline every process the service started is killed, so a
stopped service never leaves worker processes behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import psutil

from scalelab.config import ClusterConfig
from scalelab.service.logs import task_log_plugin

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

log = logging.getLogger("scalelab.service")


@dataclass(frozen=True)
class ClusterInfo:
    """What ``/health`` reports about the cluster."""

    workers: int
    scheduler: str
    dashboard: str | None
    scheduler_metrics: str | None


async def start_cluster(config: ClusterConfig) -> tuple[Client, LocalCluster | None]:
    """Connect an asynchronous client to ``config.scheduler``, or to a new LocalCluster.

    Every worker, now and later, gets the JSON task log (:mod:`.logs`).
    """
    client, cluster = await _connect(config)
    try:
        await asyncio.wait_for(cast(Awaitable[Any], client.register_plugin(task_log_plugin())), 30)
    except Exception as exc:  # the logs are worth less than the service
        log.warning("workers have no task log: %r", exc)
    return client, cluster


async def _connect(config: ClusterConfig) -> tuple[Client, LocalCluster | None]:
    from distributed import Client, LocalCluster

    if config.scheduler:
        client = await cast(
            Awaitable[Client],
            Client(
                config.scheduler,
                asynchronous=True,
                timeout="30s",
                direct_to_workers=config.direct_to_workers,
            ),
        )
        return client, None
    import dask

    failures = {"distributed.scheduler.allowed-failures": config.allowed_failures}
    with _workers_ignore_sigint(), dask.config.set(failures):
        cluster = await LocalCluster(
            n_workers=config.workers,
            threads_per_worker=config.threads_per_worker,
            processes=config.processes,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            asynchronous=True,
        )
    try:
        client = await cast(
            Awaitable[Client],
            Client(cluster, asynchronous=True, direct_to_workers=config.direct_to_workers),
        )
    except BaseException:
        await cast(Awaitable[None], cluster.close())
        raise
    return client, cluster


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Worker processes started in the block inherit an ignored SIGINT.

    Ctrl-C in a terminal reaches the whole process group; the service stops its
    workers itself, so they need not each print a KeyboardInterrupt traceback.
    (A disposition of "ignore" survives the spawn; a Python handler would not.
    The cost: a Ctrl-C in the seconds the cluster takes to start is not seen.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _host_of(address: str) -> str:
    """``tcp://10.0.0.1:8786`` gives ``10.0.0.1`` (bracketed when IPv6)."""
    hostport = address.split("://", 1)[-1]
    host = hostport.rsplit(":", 1)[0]
    return host


async def cluster_info(client: Client, timeout_s: float = 5.0) -> ClusterInfo:
    """Ask the scheduler now for its workers and HTTP port."""
    scheduler: Any = client.scheduler
    identity: dict[str, Any] = await asyncio.wait_for(scheduler.identity(n_workers=0), timeout_s)
    address = str(identity.get("address") or scheduler.address)
    port = identity.get("services", {}).get("dashboard")
    dashboard = metrics = None
    if port:
        base = f"http://{_host_of(address)}:{port}"
        dashboard, metrics = f"{base}/status", f"{base}/metrics"
    return ClusterInfo(int(identity.get("n_workers", 0)), address, dashboard, metrics)


def cached_worker_count(client: Client) -> int:
    """Workers the client last heard of (refreshed by the client every few seconds)."""
    with contextlib.suppress(Exception):
        return int(client.scheduler_info().get("n_workers", 0))
    return 0


async def close_cluster(
    client: Client | None,
    cluster: LocalCluster | None,
    deadline_s: float = 10.0,
    kill_leftovers: bool = False,
) -> None:
    """Close the client and the embedded cluster within ``deadline_s``.

    With ``kill_leftovers`` (a process that owns nothing but its cluster, as
    ``scalelab serve`` does) every child process still alive afterwards is killed.
    """

    async def _close() -> None:
        if client is not None:
            with contextlib.suppress(Exception):
                await cast(Awaitable[None], client.close(timeout=deadline_s))
        if cluster is not None:
            await cast(Awaitable[None], cluster.close(timeout=deadline_s))

    try:
        await asyncio.wait_for(_close(), deadline_s)
    except Exception as exc:  # includes TimeoutError
        log.warning("cluster did not close within %.0f s (%r)", deadline_s, exc)
    if kill_leftovers:
        kill_descendants()


def kill_descendants(grace_s: float = 2.0) -> int:
    """Terminate, then kill, every process this process started; return how many there were.

    Python's multiprocessing resource tracker is left alone: it ignores SIGTERM
    (waiting out the grace period for nothing) and ends by itself as soon as
    this process, which holds its pipe, has ended.
    """
    try:
        children = [
            c for c in psutil.Process(os.getpid()).children(recursive=True) if not _tracker(c)
        ]
    except psutil.Error:
        return 0
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    return len(children)


def _tracker(proc: psutil.Process) -> bool:
    """True for multiprocessing's resource tracker."""
    try:
        return any("multiprocessing.resource_tracker" in part for part in proc.cmdline())
    except psutil.Error:
        return False
