"""The data plane: endpoints that parse their input into a request and render the answer.

Every endpoint here passes its request through the stack of layers
(:class:`~scalelab.service.stack.Pipeline`); none of them knows which layers
there are. Out-of-range input gets 422 naming the parameter.

- ``GET /ping``: no work; the floor of the service.
- ``GET /task/cpu?units=N``: :func:`~scalelab.service.workloads.cpu_work` of N units.
- ``GET /task/io?ms=X``: :func:`~scalelab.service.workloads.io_work` (a sleep);
  ``dist=fixed|exponential|bimodal`` draws the delay (``ms`` is the fixed value
  or the mean; ``bimodal`` takes ``slow_ms`` with probability ``slow_frac``),
  ``seed`` makes the draw deterministic, ``local=true`` sleeps in the service.
- ``GET /task/key/{key}?units=N&io_ms=X``: the value of ``key`` (deterministic
  for the key and its version), through the cache when the stack has one.
  Headers: ``X-Cache``, ``X-Version``, ``X-Age-Ms``, ``X-Stale-Ms``.
- ``PUT /kv/{key}``: write the key (its version goes up); ``GET /kv/{key}``:
  its current version and write time.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi import Request as HTTPRequest
from fastapi.responses import Response as HTTPResponse

from scalelab.service.cache_origin import Cost, keyed_call, origin_fails
from scalelab.service.cache_tiers import Entry
from scalelab.service.http_metrics import REQUEST_ID
from scalelab.service.request import Request, Response
from scalelab.service.routes.inputs import bad_key, float_param, int_param, invalid, out_of_range
from scalelab.service.routes.render import render
from scalelab.service.state import ServiceState
from scalelab.service.workloads import cpu_work, draw_delay_ms, io_work

KEYED_READ = "/task/key"
"""The endpoint of keyed reads (what the cache answers)."""

WRITE = "/kv"
"""The endpoint of writes (and version lookups) of keys."""

PATHS: frozenset[str] = frozenset({"/ping", "/task/cpu", "/task/io"})
"""Data-plane paths that are counted and pass through the stack."""

PREFIXES: tuple[str, ...] = ("/task/key/", "/kv/")
"""Keyed data-plane paths; counted under the prefix (``/task/key``)."""


KEYED_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "key",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "1 to 200 letters, digits, '.', '_', ':' or '-'",
    },
    {
        "name": "units",
        "in": "query",
        "required": False,
        "schema": {"type": "integer"},
        "description": "CPU units per computation (origin.units); 0 to limits.max_cpu_units",
    },
    {
        "name": "io_ms",
        "in": "query",
        "required": False,
        "schema": {"type": "number"},
        "description": "I/O ms per computation (origin.io_ms); 0 to limits.max_io_ms",
    },
]
"""``GET /task/key/{key}``'s parameters, for the OpenAPI docs (the endpoint reads them itself)."""


def _worker_body(response: Response) -> dict[str, Any]:
    worker = response.headers.get("X-Worker", "local")
    batch = response.headers.get("X-Batch-Size")
    return {"worker": worker, "batch_size": int(batch) if batch else 0}


def _request(endpoint: str, **fields: Any) -> Request:
    """A request of ``endpoint`` carrying the client's ``X-Request-Id``."""
    return Request(endpoint, request_id=REQUEST_ID.get(), **fields)


def data_router(state: ServiceState) -> APIRouter:
    """The data-plane endpoints of the service ``state`` holds."""
    router = APIRouter(tags=["data plane"])
    handle = state.pipeline.handle
    rng = random.Random()

    @router.get("/ping")
    async def ping() -> HTTPResponse:
        """Answer without touching Dask: the floor of the service."""
        return render(await handle(_request("/ping")))

    @router.get("/task/cpu")
    async def task_cpu(
        units: int = Query(
            100, description="CPU units, tens of µs each; 0 to limits.max_cpu_units"
        ),
    ) -> HTTPResponse:
        """Run ``units`` units of CPU work on a Dask worker."""
        bad = out_of_range(
            "units", units, 0, state.config.limits.max_cpu_units, "limits.max_cpu_units"
        )
        if bad is not None:
            return bad
        request = _request("/task/cpu", cost=units, params={"units": units})
        request.work = (cpu_work, (units,))
        response = await handle(request)
        return render(response, lambda v: {"units": units, "result": v, **_worker_body(response)})

    @router.get("/task/io")
    async def task_io(
        ms: float = Query(
            10.0, description="delay in ms, the fixed value or the mean; 0 to limits.max_io_ms"
        ),
        dist: Literal["fixed", "exponential", "bimodal"] = Query("fixed"),
        slow_ms: float | None = Query(None, description="bimodal: the slow delay in ms"),
        slow_frac: float = Query(0.0, description="bimodal: probability of the slow delay"),
        seed: int | None = Query(None, description="makes the delay a function of the seed"),
        local: bool = Query(False, description="sleep on the service's event loop, not on Dask"),
    ) -> HTTPResponse:
        """Sleep (simulated I/O) on a Dask worker, or locally with ``local=true``."""
        max_ms = state.config.limits.max_io_ms
        bad = out_of_range("ms", ms, 0, max_ms, "limits.max_io_ms")
        if bad is None and dist == "bimodal":
            if slow_ms is None:
                return invalid("slow_ms", "required when dist=bimodal", None)
            bad = out_of_range("slow_ms", slow_ms, 0, max_ms, "limits.max_io_ms") or out_of_range(
                "slow_frac", slow_frac, 0, 1, "a probability"
            )
        if bad is not None:
            return bad
        delay = draw_delay_ms(dist, ms, slow_ms=slow_ms or 0.0, slow_frac=slow_frac, seed=seed)
        delay = min(delay, max_ms)
        request = _request("/task/io", cost=delay, params={"ms": ms, "dist": dist})
        if local:

            async def sleep() -> float:
                await asyncio.sleep(delay / 1000.0)
                return delay

            request.local = sleep
        else:
            request.work = (io_work, (delay,))
        response = await handle(request)
        return render(
            response,
            lambda v: {"ms": ms, "dist": dist, "delay_ms": delay, **_worker_body(response)},
        )

    @router.get("/task/key/{key}", openapi_extra={"parameters": KEYED_PARAMETERS})
    async def task_key(http: HTTPRequest) -> HTTPResponse:
        """The value of ``key`` through the cache; computed on Dask when not cached.

        The hottest path of the caching lab: its input is read here rather than
        through FastAPI's parameter models, which cost more than the cache hit.
        """
        key = http.path_params["key"]
        config = state.config
        bad = bad_key(key)
        if bad is not None:
            return bad
        query = http.query_params
        units: int | None = None
        io_ms: float | None = None
        if "units" in query:
            units, bad = int_param("units", query["units"], config.limits.max_cpu_units)
        if bad is None and "io_ms" in query:
            io_ms, bad = float_param("io_ms", query["io_ms"], config.limits.max_io_ms)
        if bad is not None:
            return bad
        origin = config.origin
        cost = Cost(
            origin.units if units is None else units, origin.io_ms if io_ms is None else io_ms
        )
        version = state.store.version(key)
        request = _request(KEYED_READ, key=key, cost=cost, params={"version": version})
        request.work = keyed_call(key, version, cost, origin_fails(origin, rng))
        response = await handle(request)
        if not response.ok:
            return render(response)
        return _keyed_answer(state, key, version, response)

    @router.put("/kv/{key}")
    async def kv_put(key: str) -> HTTPResponse:
        """Write ``key``: a new version, whose value differs from the last."""
        bad = bad_key(key)
        if bad is not None:
            return bad

        async def write() -> Any:
            return state.store.write(key)

        response = await handle(_request(WRITE, method="PUT", key=key, local=write))
        if response.ok:
            response.headers["X-Version"] = str(response.value.version)
        return render(
            response,
            lambda w: {"key": key, "version": w.version, "written_at": w.written_at},
        )

    @router.get("/kv/{key}")
    async def kv_get(key: str) -> HTTPResponse:
        """The current version of ``key`` and when it was written, without the cache."""
        bad = bad_key(key)
        if bad is not None:
            return bad

        async def read() -> Any:
            return state.store.version(key)

        response = await handle(_request(WRITE, key=key, local=read))
        if response.ok:
            response.headers["X-Version"] = str(response.value)
        return render(
            response,
            lambda v: {"key": key, "version": v, "written_at": state.store.written_at(key, v)},
        )

    return router


def _keyed_answer(state: ServiceState, key: str, version: int, response: Response) -> HTTPResponse:
    """Render a keyed read: the entry served, its version, age and staleness."""
    entry = response.value
    now = time.monotonic()
    if not isinstance(entry, Entry):  # computed without a cache layer
        entry = Entry(entry, version, time.time(), response.headers.get("X-Worker", ""), now)
    status = response.headers.setdefault("X-Cache", "miss")
    headers = response.headers
    headers["X-Version"] = str(entry.version)
    headers["X-Age-Ms"] = f"{max(0.0, (now - entry.born) * 1000.0):.3f}"
    headers["X-Stale-Ms"] = f"{state.store.stale_ms(key, entry.version, now):.3f}"
    body = (
        f'{{"key":"{key}","value":{int(entry.value)},"version":{entry.version},"cache":"{status}"}}'
    )
    return HTTPResponse(body.encode(), media_type="application/json", headers=headers)
