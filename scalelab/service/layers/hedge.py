"""``hedge``: a slow read is sent again; the first answer wins, the other is cancelled.

After the delay its :class:`~scalelab.service.resilience.HedgeDelay` chooses
(``hedge.delay_ms``, or the running ``hedge.percentile`` of recent answers),
a ``GET`` still without an answer is sent a second time through the rest of
the stack. The first answer that is a success (or the last answer, if both
fail) is returned and the other call cancelled: its Dask task is cancelled too (one
still queued never runs; one already running finishes on its worker: the extra
load a hedge costs).
Hedges are limited to ``hedge.max_extra`` of the requests by a budget, so that
a slow backend does not get twice the load. Counted: ``hedged`` (copies
sent), ``hedge_won`` (the copy answered first), ``cancelled`` (calls dropped),
``budget_exhausted``; the delay in force is the gauge ``delay_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from scalelab.failure_config import HedgeConfig
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.request import Next, Request, Response
from scalelab.service.resilience.budget import RetryBudget
from scalelab.service.resilience.hedging import HedgeDelay, check_hedge, make_hedge_delay
from scalelab.service.stack import EXTRA_TRY


class Hedge(Layer):
    """Sends a copy of a slow ``GET`` after the policy's delay; keeps the first good answer."""

    Params = HedgeConfig

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        self.policy: HedgeDelay = make_hedge_delay(params)
        self.budget = RetryBudget(params.max_extra, 0.0, 10.0)

    @classmethod
    def check(cls, params: Any, field: str) -> None:
        """A ``module:Class`` delay must load and fit."""
        check_hedge(params)

    async def __call__(self, request: Request, next: Next) -> Response:
        """Send the request; send a copy if it has not answered after the delay."""
        if request.method != "GET":
            return await next(request)
        self.budget.deposit()
        started = time.monotonic()
        delay = self.policy.delay()
        if delay is not None:
            self.gauge("delay_ms", delay * 1000.0)
        first = asyncio.ensure_future(next(request))
        calls: list[asyncio.Future[Response]] = [first]
        try:
            if delay is not None:
                left = request.time_left()
                if left is None or delay < left:
                    done, _ = await asyncio.wait({first}, timeout=delay)
                    if not done:
                        if self.budget.try_withdraw():
                            self.count("hedged")
                            request.trail.append(EXTRA_TRY)
                            calls.append(asyncio.ensure_future(next(request.replace())))
                        else:
                            self.count("budget_exhausted")
            response, winner = await self._first_good(calls)
        finally:
            for call in calls:
                if not call.done():
                    call.cancel()
                    self.count("cancelled")
            for call in calls:
                if not call.done():
                    with contextlib.suppress(BaseException):
                        await call
        if winner > 0:
            self.count("hedge_won")
            response.headers["X-Hedged"] = "won"
        elif len(calls) > 1:
            response.headers["X-Hedged"] = "lost"
        self.policy.observe(time.monotonic() - started)
        return response

    @staticmethod
    async def _first_good(calls: list[asyncio.Future[Response]]) -> tuple[Response, int]:
        """The first successful answer and its index; else the last answer (or its error)."""
        pending = set(calls)
        last: asyncio.Future[Response] | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for call in sorted(done, key=calls.index):
                last = call
                if call.exception() is None and call.result().ok:
                    return call.result(), calls.index(call)
        assert last is not None
        return last.result(), calls.index(last)
