"""The ASGI app of the task service: data-plane endpoints, health, metrics and admin API.

Data plane (admission, ingress faults and metrics apply; see :mod:`.ingress`):

- ``GET /ping``: no Dask; the floor of the service.
- ``GET /task/cpu?units=N``: :func:`~.workloads.cpu_work` of ``N`` units on a
  Dask worker, ``0 <= N <= limits.max_cpu_units``.
- ``GET /task/io?ms=X``: :func:`~.workloads.io_work` (a sleep) on a Dask worker.
  ``dist=fixed|exponential|bimodal`` draws the delay (``ms`` is the fixed value
  or the mean; ``bimodal`` takes ``slow_ms`` with probability ``slow_frac``);
  ``seed`` makes the draw deterministic; ``local=true`` sleeps on the service's
  event loop instead of Dask. Delays are at most ``limits.max_io_ms`` (an
  exponential draw above it is cut to it). The response says the delay used.

- ``GET /task/key/{key}?units=N&io_ms=X``: the value of ``key`` (deterministic
  for the key and its version), through the cache stage (:mod:`.cache_stage`);
  computing it costs ``units`` of CPU and ``io_ms`` of I/O on a Dask worker
  (defaults from the ``origin`` section). Headers: ``X-Cache`` (``hit``,
  ``miss``, ``stale``, ``coalesced``), ``X-Version`` (the version served),
  ``X-Age-Ms`` (since the value was computed) and ``X-Stale-Ms`` (since the
  version served was superseded by a write; 0 when current).
- ``PUT /kv/{key}``: write the key: its version goes up by one (the new value
  is the workload's value at that version). ``GET /kv/{key}``: its current
  version and write time, without the cache.

Out-of-range input gets 422 in FastAPI's error shape, naming the parameter.
Responses carry ``X-Worker`` (the Dask worker that ran the work) and
``X-Batch-Size`` (requests in its Dask task; 1 for the direct executor).

Control plane (never shed, stalled or counted): ``GET /health``,
``GET /metrics`` (Prometheus text), ``GET``/``PUT /admin/config``,
``POST /admin/stall?seconds=S``, ``DELETE /cache/{key}`` and ``DELETE /cache``
(invalidation), and the OpenAPI docs at ``/docs``. When the service has an
admin token, ``/admin/*`` and ``DELETE /cache`` need
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from scalelab import __version__
from scalelab.config import ServiceConfig
from scalelab.service.cache_stage import MISS
from scalelab.service.cluster import cached_worker_count, close_cluster, cluster_info, start_cluster
from scalelab.service.executors import make_executor
from scalelab.service.ingress import Ingress
from scalelab.service.metrics import CONTENT_TYPE
from scalelab.service.state import ConfigRejected, ServiceState
from scalelab.service.workloads import cpu_work, draw_delay_ms, io_work

MAX_STALL_S = 300.0
"""Longest stall ``POST /admin/stall`` accepts."""

KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,200}")
"""What a key of ``/task/key/{key}`` and ``/kv/{key}`` may be."""


def _bad_key(key: str) -> JSONResponse | None:
    """422 naming the key when it is not 1 to 200 of letters, digits, ``. _ : -``."""
    if KEY_PATTERN.fullmatch(key):
        return None
    return JSONResponse(
        {
            "detail": [
                {
                    "type": "value_error",
                    "loc": ["path", "key"],
                    "msg": "key: use 1 to 200 letters, digits, '.', '_', ':' or '-'",
                    "input": key[:200],
                }
            ]
        },
        status_code=422,
    )


def invalid(param: str, message: str, value: Any) -> JSONResponse:
    """A 422 in FastAPI's validation-error shape, naming the query parameter."""
    return JSONResponse(
        {
            "detail": [
                {
                    "type": "value_error",
                    "loc": ["query", param],
                    "msg": f"{param}: {message}",
                    "input": value
                    if isinstance(value, str | int | bool) or value is None
                    else str(value),
                }
            ]
        },
        status_code=422,
    )


def _out_of_range(
    param: str, value: float, low: float, high: float, limit: str
) -> JSONResponse | None:
    """422 when ``value`` is not within ``[low, high]`` (or not finite), else None."""
    if not math.isfinite(value) or value < low or value > high:
        return invalid(
            param, f"must be between {low:g} and {high:g} ({limit}); got {value!r}", value
        )
    return None


def _task_response(body: dict[str, Any], worker: str, batch_size: int | None) -> JSONResponse:
    headers = {"X-Worker": worker}
    if batch_size is not None:
        headers["X-Batch-Size"] = str(batch_size)
    return JSONResponse(body, headers=headers)


def _task_failed(exc: BaseException) -> JSONResponse:
    return JSONResponse(
        {"detail": f"task failed on the cluster: {type(exc).__name__}: {exc}"}, status_code=500
    )


def create_app(
    config: ServiceConfig,
    admin_token: str | None = None,
    close_deadline_s: float = 10.0,
    kill_leftovers: bool = False,
) -> FastAPI:
    """Build the service app; its lifespan starts the cluster and closes it within the deadline.

    ``kill_leftovers`` is for a process that exists only to serve (``scalelab
    serve``): after closing, any child process still alive is killed.
    """
    state = ServiceState(config, admin_token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.client, state.cluster = await start_cluster(state.config.cluster)
        try:
            state.executor = make_executor(state.client, state.config, state.metrics)
            yield
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(state.cache.close(), close_deadline_s / 4)
            executor, state.executor = state.executor, None
            if executor is not None:
                # Closing must go on to the cluster whatever the executor does.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(executor.close(), close_deadline_s / 2)
            await close_cluster(state.client, state.cluster, close_deadline_s, kill_leftovers)
            state.client = state.cluster = None

    app = FastAPI(
        title="scalelab task service",
        version=__version__,
        description="The system under test: HTTP requests whose work runs on a Dask cluster.",
        lifespan=lifespan,
    )
    app.state.service = state

    @app.get("/ping", tags=["data plane"])
    async def ping() -> Response:
        """Answer without touching Dask: the floor of the service."""
        return Response(b'{"pong":true}', media_type="application/json")

    @app.get("/task/cpu", tags=["data plane"])
    async def task_cpu(
        units: int = Query(
            100, description="CPU units, tens of µs each; 0 to limits.max_cpu_units"
        ),
    ) -> Response:
        """Run ``units`` units of CPU work on a Dask worker."""
        bad = _out_of_range(
            "units", units, 0, state.config.limits.max_cpu_units, "limits.max_cpu_units"
        )
        if bad is not None:
            return bad
        executor = state.executor
        if executor is None:
            return JSONResponse({"detail": "the service is not ready"}, status_code=503)
        try:
            result = await executor.run(cpu_work, (units,))
        except Exception as exc:
            return _task_failed(exc)
        return _task_response(
            {
                "units": units,
                "result": result.value,
                "worker": result.worker,
                "batch_size": result.batch_size,
            },
            result.worker,
            result.batch_size,
        )

    @app.get("/task/io", tags=["data plane"])
    async def task_io(
        ms: float = Query(
            10.0, description="delay in ms, the fixed value or the mean; 0 to limits.max_io_ms"
        ),
        dist: Literal["fixed", "exponential", "bimodal"] = Query("fixed"),
        slow_ms: float | None = Query(None, description="bimodal: the slow delay in ms"),
        slow_frac: float = Query(0.0, description="bimodal: probability of the slow delay"),
        seed: int | None = Query(None, description="makes the delay a function of the seed"),
        local: bool = Query(False, description="sleep on the service's event loop, not on Dask"),
    ) -> Response:
        """Sleep (simulated I/O) on a Dask worker, or locally with ``local=true``."""
        max_ms = state.config.limits.max_io_ms
        bad = _out_of_range("ms", ms, 0, max_ms, "limits.max_io_ms")
        if bad is None and dist == "bimodal":
            if slow_ms is None:
                return invalid("slow_ms", "required when dist=bimodal", None)
            bad = _out_of_range("slow_ms", slow_ms, 0, max_ms, "limits.max_io_ms") or _out_of_range(
                "slow_frac", slow_frac, 0, 1, "a probability"
            )
        if bad is not None:
            return bad
        delay = draw_delay_ms(dist, ms, slow_ms=slow_ms or 0.0, slow_frac=slow_frac, seed=seed)
        delay = min(delay, max_ms)
        body: dict[str, Any] = {"ms": ms, "dist": dist, "delay_ms": delay}
        if local:
            await asyncio.sleep(delay / 1000.0)
            body.update(worker="local", batch_size=0)
            return _task_response(body, "local", None)
        executor = state.executor
        if executor is None:
            return JSONResponse({"detail": "the service is not ready"}, status_code=503)
        try:
            result = await executor.run(io_work, (delay,))
        except Exception as exc:
            return _task_failed(exc)
        body.update(worker=result.worker, batch_size=result.batch_size)
        return _task_response(body, result.worker, result.batch_size)

    @app.get("/task/key/{key}", tags=["data plane"])
    async def task_key(
        key: str,
        units: int | None = Query(None, description="CPU units per computation (origin.units)"),
        io_ms: float | None = Query(None, description="I/O ms per computation (origin.io_ms)"),
    ) -> Response:
        """The value of ``key`` through the cache; computed on Dask when not cached."""
        bad = _bad_key(key)
        if bad is None and units is not None:
            bad = _out_of_range(
                "units", units, 0, state.config.limits.max_cpu_units, "limits.max_cpu_units"
            )
        if bad is None and io_ms is not None:
            bad = _out_of_range(
                "io_ms", io_ms, 0, state.config.limits.max_io_ms, "limits.max_io_ms"
            )
        if bad is not None:
            return bad
        if state.executor is None:
            return JSONResponse({"detail": "the service is not ready"}, status_code=503)
        try:
            answer = await state.cache.fetch(key, state.origin.cost(units, io_ms))
        except Exception as exc:
            return _task_failed(exc)
        entry = answer.entry
        now = time.time()
        stale_ms = state.store.stale_ms(key, entry.version, now)
        headers = {
            "X-Cache": answer.status,
            "X-Version": str(entry.version),
            "X-Age-Ms": f"{max(0.0, (now - entry.computed_at) * 1000.0):.3f}",
            "X-Stale-Ms": f"{stale_ms:.3f}",
        }
        if answer.status != "hit" and answer.status != "stale" and entry.worker:
            headers["X-Worker"] = entry.worker
        body = (
            f'{{"key":"{key}","value":{int(entry.value)},"version":{entry.version},'
            f'"cache":"{answer.status}"}}'
        )
        return Response(body.encode(), media_type="application/json", headers=headers)

    @app.put("/kv/{key}", tags=["data plane"])
    async def kv_put(key: str) -> Response:
        """Write ``key``: a new version, whose value differs from the last."""
        bad = _bad_key(key)
        if bad is not None:
            return bad
        write = state.store.write(key)
        if state.config.cache.invalidate_on_write:
            try:
                await state.cache.invalidate(key)
            except Exception as exc:
                return _task_failed(exc)
        return JSONResponse(
            {"key": key, "version": write.version, "written_at": write.written_at},
            headers={"X-Version": str(write.version), "X-Cache": MISS},
        )

    @app.get("/kv/{key}", tags=["data plane"])
    async def kv_get(key: str) -> Response:
        """The current version of ``key`` and when it was written, without the cache."""
        bad = _bad_key(key)
        if bad is not None:
            return bad
        version = state.store.version(key)
        return JSONResponse(
            {
                "key": key,
                "version": version,
                "written_at": state.store.written_at(key, version),
            },
            headers={"X-Version": str(version)},
        )

    @app.get("/health", tags=["control plane"])
    async def health() -> JSONResponse:
        """200 with the worker count when the cluster has workers, 503 otherwise."""
        body: dict[str, Any] = {
            "status": "starting",
            "workers": 0,
            "scheduler": None,
            "dashboard": None,
            "scheduler_metrics": None,
            "executor": state.config.executor.kind,
        }
        if state.client is None:
            return JSONResponse(body, status_code=503)
        try:
            info = await cluster_info(state.client)
        except Exception as exc:
            body.update(status="unavailable", error=f"{type(exc).__name__}: {exc}")
            return JSONResponse(body, status_code=503)
        state.metrics.workers.set(info.workers)
        body.update(
            status="ok" if info.workers else "no workers",
            workers=info.workers,
            scheduler=info.scheduler,
            dashboard=info.dashboard,
            scheduler_metrics=info.scheduler_metrics,
        )
        return JSONResponse(body, status_code=200 if info.workers else 503)

    @app.get("/metrics", tags=["control plane"])
    async def metrics() -> Response:
        """Prometheus text of the service's metrics."""
        if state.client is not None:
            state.metrics.workers.set(cached_worker_count(state.client))
        redis_keys = await state.cache.redis_size()
        if redis_keys is not None:
            state.metrics.cache_entries.labels("redis").set(redis_keys)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    async def require_admin(request: Request) -> None:
        """With an admin token set, only ``Authorization: Bearer <token>`` may pass."""
        token = state.admin_token
        if not token:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            raise HTTPException(
                status_code=401,
                detail="admin API: send 'Authorization: Bearer <token>' with the admin token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    admin = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

    @admin.get("/config")
    async def get_config() -> dict[str, Any]:
        """The service configuration now in force."""
        return state.config.model_dump(mode="json")

    @admin.put("/config")
    async def put_config(
        change: Annotated[dict[str, Any], Body(examples=[{"faults": {"error_rate": 0.1}}])],
    ) -> Response:
        """Change the configuration: the body's sections and fields are laid over the current ones.

        The result is validated as a whole (422 naming the fields otherwise) and
        applied at once; changing ``executor`` swaps the executor; ``cluster``
        cannot change while the service runs.
        """
        try:
            new = await state.apply_config(change)
        except ConfigRejected as exc:
            return JSONResponse({"detail": exc.message, "errors": exc.errors}, status_code=422)
        return JSONResponse(new.model_dump(mode="json"))

    @admin.post("/stall")
    async def stall(seconds: float = Query(..., description=f"0 to {MAX_STALL_S:g} s")) -> Response:
        """Hold every data-plane request arriving in the next ``seconds`` until the stall ends."""
        bad = _out_of_range("seconds", seconds, 0, MAX_STALL_S, "the longest stall")
        if bad is not None:
            return bad
        state.faults.stall(seconds)
        return JSONResponse({"stalled_s": seconds})

    app.include_router(admin)

    cache_admin = APIRouter(prefix="/cache", tags=["cache"], dependencies=[Depends(require_admin)])

    @cache_admin.delete("/{key}")
    async def invalidate(key: str) -> Response:
        """Remove ``key`` from every cache tier (404 when no tier held it)."""
        bad = _bad_key(key)
        if bad is not None:
            return bad
        found = await state.cache.invalidate(key)
        return JSONResponse({"key": key, "removed": found}, status_code=200 if found else 404)

    @cache_admin.delete("")
    async def invalidate_all() -> Response:
        """Remove every entry from every cache tier."""
        return JSONResponse({"removed": await state.cache.clear()})

    app.include_router(cache_admin)
    app.add_middleware(Ingress, state=state)
    return app
