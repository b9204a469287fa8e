"""The control plane: health and metrics. Never shed, stalled or counted as data-plane load."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from scalelab.service.cluster import cached_worker_count, cluster_info
from scalelab.service.metrics import CONTENT_TYPE
from scalelab.service.state import ServiceState


def control_router(state: ServiceState) -> APIRouter:
    """``GET /health`` and ``GET /metrics`` of the service ``state`` holds."""
    router = APIRouter(tags=["control plane"])

    @router.get("/health")
    async def health() -> JSONResponse:
        """200 with the worker count when the cluster has workers, 503 otherwise."""
        stack = state.pipeline.stack
        body: dict[str, Any] = {
            "status": "starting",
            "workers": 0,
            "scheduler": None,
            "dashboard": None,
            "scheduler_metrics": None,
            "executor": state.config.executor.kind,
            "stack": stack.names if stack is not None else [],
        }
        if state.client is None or stack is None:
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

    @router.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text of the service's metrics."""
        if state.client is not None:
            state.metrics.workers.set(cached_worker_count(state.client))
        cache = getattr(state.layer("cache"), "stage", None)
        redis_keys = await cache.redis_size() if cache is not None else None
        if redis_keys is not None:
            state.metrics.cache_entries.labels("redis").set(redis_keys)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    return router
