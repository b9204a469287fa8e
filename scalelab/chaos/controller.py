"""The service's faults: started, ended and listed through the admin API, each with its times.

:class:`FaultController` holds what one service may break — its Dask workers
(:mod:`.workers`), the tasks on them (:mod:`.task_faults`), the links of its
fault proxy (:mod:`.proxy`) and its own redis-server (:mod:`.redis_server`) —
and a record of every fault: its id, kind, parameters, start and end (Unix
times), and what was done. A fault ends when it is ended (``DELETE
/admin/faults/{id}``), when its ``duration_s`` has passed, or at once for an
instantaneous one. When the service stops every fault still on is ended first,
so no worker stays paused and nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from scalelab.chaos.kinds import (
    NetworkFault,
    TaskFault,
    WorkerChurn,
    WorkerClose,
    WorkerKill,
    WorkerPause,
    lasting,
    parse_fault,
)
from scalelab.chaos.workers import WorkerFaultError, Workers

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from scalelab.chaos.proxy_process import ProxyProcess
    from scalelab.chaos.redis_server import RedisServer

log = logging.getLogger("scalelab.chaos")


class FaultRefused(Exception):
    """A fault that cannot start here (bad parameters, nothing to act on); ``status`` for HTTP."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class FaultRecord:
    """One fault: what, when it started and ended, and what was done."""

    id: str
    kind: str
    params: dict[str, Any]
    started: float
    ended: float | None = None
    duration_s: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "active": self.ended is None,
            "detail": self.detail,
            "error": self.error,
        }


class FaultController:
    """Starts and ends the faults of one service, and keeps their records."""

    def __init__(
        self,
        client: Client,
        cluster: LocalCluster | None = None,
        proxy: ProxyProcess | None = None,
        links: dict[str, str] | None = None,
        redis: RedisServer | None = None,
    ) -> None:
        self.client = client
        self.workers = Workers(client, cluster)
        self.proxy = proxy
        self.links = dict(links or {})
        self.redis = redis
        self.records: dict[str, FaultRecord] = {}
        self._ids = itertools.count(1)
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    # -- the API ------------------------------------------------------------------------------

    async def start(
        self, kind: str, params: dict[str, Any], duration_s: float | None = None
    ) -> FaultRecord:
        """Start a fault now; end it after ``duration_s`` when given (and it lasts)."""
        try:
            model = parse_fault(kind, params)
        except ValueError as exc:
            raise FaultRefused(str(exc), 422) from None
        if duration_s is not None and duration_s <= 0:
            raise FaultRefused("duration_s: give a positive number of seconds", 422)
        async with self._lock:
            record = FaultRecord(
                f"f{next(self._ids)}", kind, model.model_dump(mode="json"), time.time()
            )
            record.duration_s = duration_s
            try:
                record.detail = await self._begin(record, model)
            except FaultRefused:
                raise
            except (WorkerFaultError, RuntimeError, OSError, TimeoutError) as exc:
                raise FaultRefused(f"{kind}: {exc}") from None
            self.records[record.id] = record
            if not lasting(kind, model):
                record.ended = record.started
            elif duration_s is not None:
                self._timers[record.id] = asyncio.ensure_future(
                    self._end_later(record.id, duration_s)
                )
        return record

    async def end(self, fault_id: str) -> FaultRecord:
        """End a fault (nothing to do when it has already ended)."""
        record = self.records.get(fault_id)
        if record is None:
            raise FaultRefused(f"no fault {fault_id!r}; GET /admin/faults lists them", 404)
        timer = self._timers.pop(fault_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        async with self._lock:
            if record.ended is None:
                try:
                    record.detail.update(await self._finish(record))
                except Exception as exc:  # the end is recorded whatever happens
                    record.error = f"{type(exc).__name__}: {exc}"
                    log.warning("ending fault %s failed: %r", fault_id, exc)
                record.ended = time.time()
        return record

    async def end_all(self) -> list[FaultRecord]:
        """End every fault still on."""
        return [await self.end(r.id) for r in list(self.records.values()) if r.ended is None]

    def list(self) -> list[dict[str, Any]]:
        """Every fault, in the order they started."""
        return [r.as_dict() for r in self.records.values()]

    async def close(self) -> None:
        """End every fault (resume paused workers); the service is stopping."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.end_all(), 15.0)
        await self.workers.resume_all()

    async def _end_later(self, fault_id: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._timers.pop(fault_id, None)
        await self.end(fault_id)

    # -- each kind ---------------------------------------------------------------------------

    async def _begin(self, record: FaultRecord, model: BaseModel) -> dict[str, Any]:
        if isinstance(model, WorkerKill):
            worker = await self.workers.resolve(model.worker)
            return await self.workers.kill(worker, model.restart)
        if isinstance(model, WorkerClose):
            worker = await self.workers.resolve(model.worker)
            return await self.workers.close(worker)
        if isinstance(model, WorkerPause):
            worker = await self.workers.resolve(model.worker)
            return await self.workers.pause(worker)
        if isinstance(model, WorkerChurn):
            self._loops[record.id] = asyncio.ensure_future(self._churn(record, model))
            return {"kills": []}
        if isinstance(model, TaskFault):
            return await self._task_fault(model)
        if isinstance(model, NetworkFault):
            return await self._network(model, record)
        return await self._redis_stop()

    async def _finish(self, record: FaultRecord) -> dict[str, Any]:
        kind = record.kind
        if kind == "worker_pause":
            return await self.workers.resume(record.detail["worker"])
        if kind == "worker_churn":
            loop = self._loops.pop(record.id, None)
            if loop is not None:
                loop.cancel()
                with contextlib.suppress(BaseException):
                    await loop
            return {}
        if kind == "task":
            from scalelab.chaos.task_faults import PLUGIN_NAME

            await self.client.unregister_worker_plugin(PLUGIN_NAME)
            return {"removed": True}
        if kind == "network":
            return await self._network_end(record)
        if kind == "redis_stop":
            assert self.redis is not None
            await asyncio.to_thread(self.redis.start)
            return {"restarted": self.redis.url}
        if record.params.get("restore"):
            return {"restored": await self.workers.restore()}
        return {}

    async def _churn(self, record: FaultRecord, model: WorkerChurn) -> None:
        rng = random.Random(model.seed)
        kills: list[dict[str, Any]] = record.detail["kills"]
        while True:
            await asyncio.sleep(rng.expovariate(1.0 / model.mean_interval_s))
            try:
                worker = await self.workers.resolve("random", rng)
                if model.mode == "kill":
                    done = await self.workers.kill(worker, model.restart)
                else:
                    done = await self.workers.close(worker)
                kills.append({"t": time.time(), **done})
            except Exception as exc:  # no worker to kill now: try at the next time
                kills.append({"t": time.time(), "error": f"{type(exc).__name__}: {exc}"})

    async def _task_fault(self, model: TaskFault) -> dict[str, Any]:
        from scalelab.chaos.task_faults import PLUGIN_NAME, TaskFaults

        if any(r.kind == "task" and r.ended is None for r in self.records.values()):
            raise FaultRefused("a task fault is already on; end it first (one at a time)")
        running = await self.workers.known()
        if "*" in model.workers:
            targets = [w.address for w in running]
        else:
            targets = [(await self.workers.resolve(ref)).address for ref in model.workers]
        plugin = TaskFaults(
            targets,
            delay_ms=model.delay_ms,
            dist=model.dist,
            mean_ms=model.mean_ms,
            slow_ms=model.slow_ms,
            slow_frac=model.slow_frac,
            error_rate=model.error_rate,
            seed=model.seed,
        )
        await self.client.register_plugin(plugin, name=PLUGIN_NAME)
        return {"workers": targets}

    async def _network(self, model: NetworkFault, record: FaultRecord) -> dict[str, Any]:
        if self.proxy is None or model.link not in self.links:
            raise FaultRefused(
                f"network: the link {model.link!r} does not pass through the fault proxy; "
                f'start the service with chaos.proxy = ["{model.link}"]'
            )
        if model.toxic == "down":
            await self.proxy.call("POST", f"/proxies/{model.link}", {"enabled": False})
            return {"link": model.link, "down": True}
        streams = ["upstream", "downstream"] if model.stream == "both" else [model.stream]
        names = []
        for stream in streams:
            name = f"{record.id}_{model.toxic}_{stream}"
            body = {
                "name": name,
                "type": model.toxic,
                "stream": stream,
                "toxicity": model.toxicity,
                "attributes": model.attributes(),
            }
            await self.proxy.call("POST", f"/proxies/{model.link}/toxics", body)
            names.append(name)
        return {"link": model.link, "toxics": names}

    async def _network_end(self, record: FaultRecord) -> dict[str, Any]:
        assert self.proxy is not None
        link = record.detail["link"]
        if record.detail.get("down"):
            await self.proxy.call("POST", f"/proxies/{link}", {"enabled": True})
            return {"up": True}
        for name in record.detail.get("toxics", []):
            await self.proxy.call("DELETE", f"/proxies/{link}/toxics/{name}")
        return {"removed": record.detail.get("toxics", [])}

    async def _redis_stop(self) -> dict[str, Any]:
        if self.redis is None:
            raise FaultRefused(
                "redis_stop: the service has no redis-server of its own; start it with "
                "chaos.redis_server = true"
            )
        if not self.redis.running:
            raise FaultRefused("redis_stop: the service's redis-server is already stopped")
        await asyncio.to_thread(self.redis.stop)
        return {"stopped": self.redis.url}

    async def network(self) -> dict[str, Any]:
        """The proxy's links and their toxics (empty without a proxy)."""
        if self.proxy is None:
            return {}
        result: dict[str, Any] = await self.proxy.call("GET", "/proxies")
        return result
