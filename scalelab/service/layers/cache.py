"""``cache``: the cache stage in front of keyed reads (``GET /task/key/{key}``).

A read is answered from a tier or computed through the rest of the stack (see
:mod:`scalelab.service.cache_stage` for the answers it gives and what it
guarantees after a write). A write (``PUT /kv/{key}``) passes through, and with
``cache.invalidate_on_write`` removes the key from every tier once it is done.
Other requests pass through untouched. The cache's entries live as long as the
layer: a configuration change that leaves the ``cache`` section alone keeps them.
"""

from __future__ import annotations

import random
from typing import Any

from scalelab.config import CacheConfig
from scalelab.service.cache_origin import Cost, KeyCall, origin_fails
from scalelab.service.cache_policies import policy_class
from scalelab.service.cache_stage import HIT, STALE, make_cache_stage
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.request import Next, Request, Response


class Cache(Layer):
    """Answers keyed reads from its tiers, computing misses through ``next``."""

    Params = CacheConfig

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        self.stage = make_cache_stage(params, context.store, context.metrics, context.client)
        self.rng = random.Random()

    @classmethod
    def check(cls, params: Any, field: str) -> None:
        """A ``module:Class`` eviction policy must load and fit before the stack is built."""
        policy_class(params.policy)

    def _fails(self) -> bool:
        return origin_fails(self.context.config().origin, self.rng)

    async def __call__(self, request: Request, next: Next) -> Response:
        """Serve a keyed read from the cache; invalidate on a write; pass the rest on."""
        key = request.key
        if key is None:
            return await next(request)
        if request.method != "GET":
            response = await next(request)
            if response.ok and self.params.invalidate_on_write:
                await self.stage.invalidate(key)
                self.count("invalidated")
            return response
        cost = request.cost if isinstance(request.cost, Cost) else Cost()
        call = KeyCall(request, next, cost, self._fails, self.context.client)
        answer = await self.stage.fetch(key, call)
        self.count(answer.status)
        headers = {"X-Cache": answer.status}
        if answer.status != HIT and answer.status != STALE and answer.entry.worker:
            headers["X-Worker"] = answer.entry.worker
        return Response(200, value=answer.entry, headers=headers)

    async def close(self) -> None:
        """Stop refreshes and close the Redis connections."""
        await self.stage.close()
