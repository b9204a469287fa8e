"""The ASGI app of the task service: three routers over one stack of layers.

- data plane (:mod:`.routes.data`): endpoints that parse input into a
  :class:`~.request.Request`, pass it through the stack
  (:class:`~.stack.Pipeline`) and render the answer;
- control plane (:mod:`.routes.control`): ``/health`` and ``/metrics``;
- admin (:mod:`.routes.admin`): the configuration, the stack, a stall, cache
  invalidation; and (:mod:`.routes.faults`) faults of workers, tasks, the network
  and Redis; behind a token when the service has one.

The app's lifespan starts (or connects to) the Dask cluster, builds the stack
from the configuration, and on the way out closes the stack and then the
cluster within a deadline. The OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from scalelab import __version__
from scalelab.chaos.controller import FaultController
from scalelab.chaos.setup import ChaosSetup
from scalelab.config import ServiceConfig
from scalelab.service.cluster import close_cluster
from scalelab.service.http_metrics import HttpMetrics
from scalelab.service.routes.admin import admin_routers
from scalelab.service.routes.control import control_router
from scalelab.service.routes.data import PATHS, PREFIXES, data_router
from scalelab.service.routes.dataset import (
    DATA_PATHS,
    DATA_PREFIXES,
    add_admin_routes,
    dataset_router,
)
from scalelab.service.routes.faults import ChaosHolder, fault_router
from scalelab.service.stack import plan_stack
from scalelab.service.state import ServiceState


def create_app(
    config: ServiceConfig,
    admin_token: str | None = None,
    close_deadline_s: float = 10.0,
    kill_leftovers: bool = False,
) -> FastAPI:
    """Build the service app; its lifespan starts the cluster and closes it within the deadline.

    ``kill_leftovers`` is for a process that exists only to serve (``scalelab
    serve``): after closing, any child process still alive is killed. A stack
    entry that cannot be loaded raises :class:`~scalelab.errors.PluginError` here.
    """
    plan_stack(config)
    state = ServiceState(config, admin_token)

    holder = ChaosHolder()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        chaos = ChaosSetup(state.config)
        try:
            state.config = await chaos.before_cluster()
            state.client, state.cluster = await chaos.start_cluster()
        except BaseException:
            await chaos.close()
            raise
        controller = FaultController(
            state.client, state.cluster, chaos.proxy, chaos.links, chaos.redis
        )
        holder.controller = controller
        try:
            await state.start()
            yield
        finally:
            # Faults end first (a paused worker would hold up the cluster's close);
            # closing must go on to the cluster whatever the layers do.
            holder.controller = None
            with contextlib.suppress(Exception):
                await controller.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(state.close(close_deadline_s / 2), close_deadline_s / 2)
            await close_cluster(state.client, state.cluster, close_deadline_s, kill_leftovers)
            state.client = state.cluster = None
            await chaos.close()

    app = FastAPI(
        title="scalelab task service",
        version=__version__,
        description="The system under test: HTTP requests whose work runs on a Dask cluster, "
        "through a stack of layers chosen by configuration.",
        lifespan=lifespan,
    )
    app.state.service = state
    app.include_router(data_router(state))
    app.include_router(dataset_router(state))
    app.include_router(control_router(state))
    for router in admin_routers(state):
        if router.prefix == "/admin":
            add_admin_routes(router, state)
        app.include_router(router)
    app.include_router(fault_router(state, holder))
    app.add_middleware(
        HttpMetrics,
        metrics=state.metrics,
        paths=PATHS | DATA_PATHS,
        prefixes=(*PREFIXES, *DATA_PREFIXES),
        log_requests=lambda: state.config.logging.requests,
    )
    return app
