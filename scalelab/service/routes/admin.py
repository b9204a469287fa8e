"""The admin API: read and change the configuration, see the stack, stall, invalidate the cache.

When the service has an admin token, every route here needs
``Authorization: Bearer <token>``. It listens on loopback unless the service
was started with a token (see :mod:`scalelab.service.server`).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from scalelab.service.routes.inputs import bad_key, out_of_range
from scalelab.service.state import ConfigRejected, ServiceState

MAX_STALL_S = 300.0
"""Longest stall ``POST /admin/stall`` accepts."""


def admin_guard(state: ServiceState) -> Any:
    """The dependency every admin route takes: with a token set, ``Authorization: Bearer``."""

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

    return Depends(require_admin)


def admin_routers(state: ServiceState) -> list[APIRouter]:
    """The ``/admin`` and ``/cache`` routers of the service ``state`` holds."""

    guard = [admin_guard(state)]
    admin = APIRouter(prefix="/admin", tags=["admin"], dependencies=guard)

    @admin.get("/config")
    async def get_config() -> dict[str, Any]:
        """The service configuration now in force."""
        return state.config.model_dump(mode="json")

    @admin.put("/config")
    async def put_config(
        change: Annotated[dict[str, Any], Body(examples=[{"faults": {"error_rate": 0.1}}])],
    ) -> Response:
        """Change the configuration: the body's sections and fields are laid over the current ones.

        The result is validated as a whole (422 naming the fields otherwise),
        the stack is rebuilt (layers whose settings did not change are kept)
        and replaces the old one at once; requests in flight finish on the old
        one. ``cluster`` cannot change while the service runs.
        """
        try:
            new = await state.apply_config(change)
        except ConfigRejected as exc:
            return JSONResponse({"detail": exc.message, "errors": exc.errors}, status_code=422)
        return JSONResponse(new.model_dump(mode="json"))

    @admin.get("/stack")
    async def get_stack() -> Response:
        """The layers of the stack in force, outermost first: name, class, parameters."""
        stack = state.pipeline.stack
        return JSONResponse({"layers": stack.describe() if stack is not None else []})

    @admin.post("/stall")
    async def stall(seconds: float = Query(..., description=f"0 to {MAX_STALL_S:g} s")) -> Response:
        """Hold every data-plane request arriving in the next ``seconds`` until the stall ends.

        The ``faults`` layer holds them; without one in the stack, nothing would.
        """
        bad = out_of_range("seconds", seconds, 0, MAX_STALL_S, "the longest stall")
        if bad is not None:
            return bad
        if state.layer("faults") is None:
            return JSONResponse(
                {"detail": "the stack has no 'faults' layer to hold requests; add it to stack"},
                status_code=409,
            )
        state.context.stall.stall(seconds)
        return JSONResponse({"stalled_s": seconds})

    cache = APIRouter(prefix="/cache", tags=["cache"], dependencies=guard)

    def cache_stage() -> Any:
        return getattr(state.layer("cache"), "stage", None)

    def no_cache() -> Response:
        return JSONResponse({"detail": "the stack has no 'cache' layer"}, status_code=409)

    @cache.delete("/{key}")
    async def invalidate(key: str) -> Response:
        """Remove ``key`` from every cache tier (404 when no tier held it)."""
        bad = bad_key(key)
        if bad is not None:
            return bad
        stage = cache_stage()
        if stage is None:
            return no_cache()
        found = await stage.invalidate(key)
        return JSONResponse({"key": key, "removed": found}, status_code=200 if found else 404)

    @cache.delete("")
    async def invalidate_all() -> Response:
        """Remove every entry from every cache tier."""
        stage = cache_stage()
        if stage is None:
            return no_cache()
        return JSONResponse({"removed": await stage.clear()})

    return [admin, cache]
