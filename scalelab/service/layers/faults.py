"""``faults``: the ingress fault point: a stall of the data plane, an added delay, injected errors.

An experiment switches faults on at run time: ``POST /admin/stall?seconds=S``
holds every request arriving in the next S seconds until the stall ends (the
known stall that coordinated-omission tests measure against), and ``PUT
/admin/config`` with a ``faults`` section sets a delay or an error rate.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from scalelab.config import FaultsConfig
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.request import Next, Request, Response, error

INJECTED_ERROR = "injected fault at ingress (faults.error_rate)"


class Faults(Layer):
    """Applies the stall, ``ingress_delay_ms`` and ``error_rate`` to each request."""

    Params = FaultsConfig

    def __init__(self, params: Any, context: LayerContext, rng: random.Random | None = None):
        super().__init__(params, context)
        self.rng = rng or random.Random()
        self._injected = context.metrics.faults.labels("error")

    async def __call__(self, request: Request, next: Next) -> Response:
        """Hold the request through a stall, delay it, or fail it, as configured."""
        stall = self.context.stall
        if stall.until:
            held = False
            while (left := stall.until - stall.clock()) > 0:
                held = True
                await asyncio.sleep(left)
            if held:
                self.count("stalled")
        params = self.params
        if params.ingress_delay_ms > 0:
            await asyncio.sleep(params.ingress_delay_ms / 1000.0)
            self.count("delayed")
        if params.error_rate > 0 and self.rng.random() < params.error_rate:
            self._injected.inc()
            self.count("error")
            return error(500, INJECTED_ERROR)
        return await next(request)
