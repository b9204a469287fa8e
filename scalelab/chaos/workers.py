"""Faults of Dask workers: kill, close, pause, churn; on a LocalCluster or an external cluster.

The service owns its Dask client, so it acts on workers through Dask itself:
the scheduler says which workers there are (and their nannies), each worker
says its process id and host (``client.run``). A signal goes straight from the
service when the worker runs on this host (a LocalCluster, or ``dask worker``
processes beside the service); otherwise through the worker's nanny (``run``
on the nanny process); and a worker without a nanny on another host can still
kill itself. Without restart, a worker's nanny is first told to close with it
(``close_gracefully``), so nothing restarts it.

Nothing here leaves a process behind: a killed worker is dead (or replaced by
its nanny), a paused one is resumed when its fault ends or the service stops,
and a LocalCluster's closed nannies are closed by the cluster's own shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

RUN_TIMEOUT_S = 10.0
"""Longest a ``client.run`` on a worker or nanny may take."""

RETIRE_TIMEOUT_S = 20.0
"""Longest Dask may take to move a closing worker's results (the admin call waits 30 s)."""


class WorkerFaultError(RuntimeError):
    """A worker fault that cannot be done here; the message says why."""


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as the faults see it."""

    address: str
    name: str
    nanny: str | None
    pid: int
    host: str
    local: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for ``GET /admin/workers``."""
        return asdict(self)


def _identify() -> tuple[int, str]:
    return os.getpid(), socket.gethostname()


def _signal(pid: int, sig: int) -> None:
    os.kill(pid, sig)


def _signal_self(sig: int) -> None:
    os.kill(os.getpid(), sig)


async def _close_self(dask_worker: Any) -> None:
    """On a worker: close, nanny and all (a retirement Dask declined)."""
    await dask_worker.close(nanny=True, reason="scalelab-worker-close")


def _close_nanny_with_worker(dask_worker: Any) -> None:
    """On a nanny: do not restart the worker when its process exits; close instead."""
    dask_worker.close_gracefully(reason="scalelab-worker-kill-without-restart")


class Workers:
    """The workers of one service's cluster, and the faults done to them."""

    def __init__(self, client: Client, cluster: LocalCluster | None = None) -> None:
        self.client = client
        self.cluster = cluster
        self.size = len(cluster.worker_spec) if cluster is not None else 0
        """A LocalCluster's size, which :meth:`restore` brings it back to."""
        self._known: dict[str, tuple[int, str]] = {}
        self.paused: dict[str, WorkerInfo] = {}

    async def known(self) -> list[WorkerInfo]:
        """Every worker the scheduler knows, sorted by address (paused ones included)."""
        scheduler: Any = self.client.scheduler
        identity = await asyncio.wait_for(scheduler.identity(n_workers=-1), RUN_TIMEOUT_S)
        workers: dict[str, Any] = identity.get("workers") or {}
        missing = [a for a in workers if a not in self._known and a not in self.paused]
        if missing:
            found = await asyncio.wait_for(
                self.client.run(_identify, workers=missing, on_error="return"), RUN_TIMEOUT_S
            )
            for address, value in found.items():
                if isinstance(value, tuple | list):
                    self._known[address] = (int(value[0]), str(value[1]))
        here = socket.gethostname()
        out = []
        for address in sorted(workers):
            if address not in self._known:
                continue
            pid, host = self._known[address]
            info = workers[address]
            local = host == here and psutil.pid_exists(pid)
            out.append(
                WorkerInfo(address, str(info.get("name")), info.get("nanny"), pid, host, local)
            )
        return out

    async def resolve(self, ref: int | str, rng: random.Random | None = None) -> WorkerInfo:
        """The worker ``ref`` names: an index into :meth:`known`, an address, or ``"random"``."""
        workers = [w for w in await self.known() if w.address not in self.paused]
        if not workers:
            raise WorkerFaultError("the cluster has no running worker to act on")
        if ref == "random":
            return (rng or random).choice(workers)
        if isinstance(ref, int):
            if ref >= len(workers):
                raise WorkerFaultError(
                    f"worker {ref}: the cluster has {len(workers)} running workers (0 to "
                    f"{len(workers) - 1})"
                )
            return workers[ref]
        for worker in workers:
            if worker.address == ref:
                return worker
        raise WorkerFaultError(f"worker {ref}: no running worker has that address")

    async def send(self, worker: WorkerInfo, sig: int) -> str:
        """Send ``sig`` to the worker's process; return how it was sent."""
        if worker.local:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, sig)
            return "signal from the service"
        if worker.nanny:
            await asyncio.wait_for(
                self.client.run(_signal, worker.pid, sig, workers=[worker.address], nanny=True),
                RUN_TIMEOUT_S,
            )
            return "signal from the worker's nanny"
        if sig == signal.SIGKILL:
            await self.client.run(_signal_self, sig, workers=[worker.address], wait=False)
            return "signal from the worker itself"
        raise WorkerFaultError(
            f"worker {worker.address} runs on {worker.host} without a nanny: it cannot be "
            "paused and resumed from here; start it with a nanny or beside the service"
        )

    async def kill(self, worker: WorkerInfo, restart: bool = True) -> dict[str, Any]:
        """SIGKILL the worker; without ``restart`` its nanny closes instead of restarting it."""
        if not restart and worker.nanny:
            await asyncio.wait_for(
                self.client.run(_close_nanny_with_worker, workers=[worker.address], nanny=True),
                RUN_TIMEOUT_S,
            )
        how = await self.send(worker, signal.SIGKILL)
        self._known.pop(worker.address, None)
        return {"worker": worker.address, "pid": worker.pid, "restart": restart, "how": how}

    async def close(self, worker: WorkerInfo) -> dict[str, Any]:
        """Retire the worker gracefully (its results are moved first), nanny and all.

        Dask retires a worker only once every result that it alone holds has a copy on
        another worker; when it cannot make one it declines, and the worker would run on
        unable to take tasks. It is then closed all the same (``moved`` is False): Dask
        computes again what was lost when it is asked for.
        """
        retired = await asyncio.wait_for(
            self.client.retire_workers([worker.address], close_workers=True), RETIRE_TIMEOUT_S
        )
        moved = worker.address in (retired or {})
        if not moved and await self._listed(worker.address):
            nanny = self._local_nanny(worker.address)
            if nanny is not None:  # a LocalCluster's: closed by its owner, as restore expects
                await asyncio.wait_for(nanny.close(), RETIRE_TIMEOUT_S)
            else:
                await asyncio.wait_for(
                    self.client.run(_close_self, workers=[worker.address], wait=False),
                    RUN_TIMEOUT_S,
                )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RUN_TIMEOUT_S
            while await self._listed(worker.address):
                if loop.time() >= deadline:
                    raise WorkerFaultError(
                        f"worker {worker.address} neither retired nor closed in "
                        f"{RUN_TIMEOUT_S:g} s; kill it instead (worker_kill)"
                    )
                await asyncio.sleep(0.1)
        self._known.pop(worker.address, None)
        return {"worker": worker.address, "pid": worker.pid, "moved": moved}

    def _local_nanny(self, address: str) -> Any:
        """The LocalCluster's nanny of the worker at ``address``, or None."""
        if self.cluster is None:
            return None
        for nanny in list(self.cluster.workers.values()):
            if getattr(nanny, "worker_address", None) == address:
                return nanny
        return None

    async def _listed(self, address: str) -> bool:
        """Whether the scheduler still lists the worker at ``address``."""
        scheduler: Any = self.client.scheduler
        identity = await asyncio.wait_for(scheduler.identity(n_workers=-1), RUN_TIMEOUT_S)
        return address in (identity.get("workers") or {})

    async def pause(self, worker: WorkerInfo) -> dict[str, Any]:
        """SIGSTOP the worker's process (its tasks and heartbeats stop)."""
        if not worker.local and not worker.nanny:
            raise WorkerFaultError(
                f"worker {worker.address} runs on {worker.host} without a nanny: it could "
                "not be resumed from here; start it with a nanny or beside the service"
            )
        how = await self.send(worker, signal.SIGSTOP)
        self.paused[worker.address] = worker
        return {"worker": worker.address, "pid": worker.pid, "how": how}

    async def resume(self, address: str) -> dict[str, Any]:
        """SIGCONT a worker this service paused."""
        worker = self.paused.pop(address, None)
        if worker is None:
            return {"worker": address, "resumed": False}
        await self.send(worker, signal.SIGCONT)
        return {"worker": address, "pid": worker.pid, "resumed": True}

    async def resume_all(self) -> None:
        """SIGCONT every worker still paused (the service is stopping)."""
        for address in list(self.paused):
            with contextlib.suppress(Exception):
                await self.resume(address)

    async def restore(self) -> list[str]:
        """LocalCluster: start a replacement for every worker whose nanny has closed (or is
        closing: it is waited for) and bring the cluster back to its size."""
        cluster = self.cluster
        if cluster is None:
            return []
        from distributed.core import Status

        ending = (Status.closing, Status.closing_gracefully)
        gone_states = (Status.closed, Status.failed, *ending)
        gone = [
            name
            for name, nanny in list(cluster.workers.items())
            if getattr(nanny, "status", None) in gone_states
        ]
        for _ in range(100):  # a nanny still closing is waited for (at most 10 s)
            if all(getattr(cluster.workers[n], "status", None) not in ending for n in gone):
                break
            await asyncio.sleep(0.1)
        for name in gone:
            del cluster.workers[name]
            cluster.worker_spec.pop(name, None)
        if gone:
            cluster.scale(self.size)
            await cluster._correct_state()
        return [str(name) for name in gone]
