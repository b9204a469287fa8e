"""The admin API of faults: start, end and list them; the workers and links they act on.

- ``GET /admin/faults``: every fault this service has had, with its start and end;
- ``POST /admin/faults`` ``{"kind": ..., "params": {...}, "duration_s": S}``: start one
  (201 with its record; 422 naming a bad parameter; 409 when it cannot be done here);
- ``DELETE /admin/faults/{id}``: end one; ``DELETE /admin/faults``: end all;
- ``GET /admin/workers``: the cluster's workers (address, pid, host, nanny, paused);
- ``GET /admin/network``: the fault proxy's links and toxics.

``scalelab fault ...`` is the command line of the same API
(:mod:`scalelab.chaos.cli`); a spec's ``[[faults]]`` calls it on a schedule.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse, Response

from scalelab.chaos.controller import FaultController, FaultRefused
from scalelab.service.routes.admin import admin_guard
from scalelab.service.state import ServiceState


class ChaosHolder:
    """The fault controller of a running service (set once its cluster is up)."""

    controller: FaultController | None = None


def _refused(exc: FaultRefused) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


def _not_ready() -> Response:
    return JSONResponse({"detail": "the service is not ready: its cluster is starting"}, 503)


def fault_router(state: ServiceState, holder: ChaosHolder) -> APIRouter:
    """The ``/admin/faults``, ``/admin/workers`` and ``/admin/network`` routes."""
    router = APIRouter(prefix="/admin", tags=["faults"], dependencies=[admin_guard(state)])

    @router.get("/faults")
    async def list_faults() -> Response:
        """Every fault, in the order they started, with its start and end (Unix times)."""
        controller = holder.controller
        return JSONResponse({"faults": controller.list() if controller else []})

    @router.post("/faults")
    async def start_fault(
        body: Annotated[
            dict[str, Any],
            Body(examples=[{"kind": "worker_kill", "params": {"worker": 0}}]),
        ],
    ) -> Response:
        """Start a fault: ``kind``, its ``params``, and optionally ``duration_s``."""
        controller = holder.controller
        if controller is None:
            return _not_ready()
        unknown = sorted(set(body) - {"kind", "params", "duration_s"})
        if unknown or not isinstance(body.get("kind"), str):
            return JSONResponse(
                {
                    "detail": "give {'kind': ..., 'params': {...}, 'duration_s': S}"
                    + (f"; unknown keys: {', '.join(unknown)}" if unknown else "")
                },
                status_code=422,
            )
        duration = body.get("duration_s")
        try:
            record = await controller.start(
                body["kind"],
                dict(body.get("params") or {}),
                float(duration) if duration is not None else None,
            )
        except FaultRefused as exc:
            return _refused(exc)
        return JSONResponse(record.as_dict(), status_code=201)

    @router.delete("/faults/{fault_id}")
    async def end_fault(fault_id: str) -> Response:
        """End one fault (its end time is recorded)."""
        controller = holder.controller
        if controller is None:
            return _not_ready()
        try:
            record = await controller.end(fault_id)
        except FaultRefused as exc:
            return _refused(exc)
        return JSONResponse(record.as_dict())

    @router.delete("/faults")
    async def end_all() -> Response:
        """End every fault still on."""
        controller = holder.controller
        if controller is None:
            return _not_ready()
        return JSONResponse({"ended": [r.as_dict() for r in await controller.end_all()]})

    @router.get("/workers")
    async def workers() -> Response:
        """The workers the scheduler knows, and which this service has paused."""
        controller = holder.controller
        if controller is None:
            return _not_ready()
        listed = await controller.workers.known()
        paused = set(controller.workers.paused)
        return JSONResponse(
            {"workers": [{**w.as_dict(), "paused": w.address in paused} for w in listed]}
        )

    @router.get("/network")
    async def network() -> Response:
        """The fault proxy's links, with their toxics (empty without ``chaos.proxy``)."""
        controller = holder.controller
        return JSONResponse({"links": await controller.network() if controller else {}})

    return router
