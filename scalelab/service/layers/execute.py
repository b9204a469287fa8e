"""``executor``: the terminal layer; runs the request's work and answers.

The work is a workload call run on the Dask cluster by the executor that
``executor.kind`` names (:mod:`scalelab.service.executors`), a coroutine run
in the service itself (``request.local``), or nothing at all (``/ping``).
The response carries ``X-Worker`` (the Dask worker that ran the work, or
            if request.request_id and self.context.config().logging.tasks:
                fn = Traced(fn, request.request_id)
            if request.workers:
                result = await self._run_at(fn, args, request.workers)
            else:
                result = await self.executor.run(fn, args)
"""

from __future__ import annotations

from typing import Any

from scalelab.config import ExecutorConfig
from scalelab.service.executors import make_executor
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.logs import Traced
from scalelab.service.request import Next, NotReady, Request, Response

PONG = {"pong": True}


class ExecutorLayer(Layer):
    """Ends the stack: runs ``request.work`` on the cluster through the configured executor."""

    Params = ExecutorConfig
    terminal = True

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        client = context.client()
        if client is None:
            raise NotReady("no Dask client yet")
        config = context.config().model_copy(update={"executor": params})
        self.executor = make_executor(client, config, context.metrics)

    async def start(self) -> None:
        """Let the executor prepare itself on the cluster (actors, say), if it needs to."""
        start = getattr(self.executor, "start", None)
        if start is not None:
            await start()

    async def __call__(self, request: Request, next: Next) -> Response:
        """Run the work: on the cluster, in the service, or none (``/ping``)."""
        if request.work is not None:
            fn, args = request.work
            if request.request_id and self.context.config().logging.tasks:
                fn = Traced(fn, request.request_id)
            if request.workers:
                result = await self._run_at(fn, args, request.workers)
            else:
                result = await self.executor.run(fn, args)
            headers = {"X-Worker": result.worker, "X-Batch-Size": str(result.batch_size)}
            return Response(200, value=result.value, headers=headers)
        if request.local is not None:
            return Response(200, value=await request.local(), headers={"X-Worker": "local"})
        return Response(200, body=PONG)

    async def _run_at(self, fn: Any, args: tuple[Any, ...], workers: tuple[str, ...]) -> Any:
        """Run work pinned to ``workers``, with an executor that can place it (``run_at``)."""
        run_at = getattr(self.executor, "run_at", None)
        if run_at is None:
            raise RuntimeError(
                f"executor {type(self.executor).__qualname__} cannot place work on a worker "
                "(it has no run_at); use executor.kind = 'direct' or let the scheduler choose"
            )
        return await run_at(fn, args, workers)

    async def close(self) -> None:
        """Finish what the executor has pending."""
        await self.executor.close()
