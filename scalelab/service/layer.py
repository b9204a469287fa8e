"""The contract of a layer: one stage of the request path, in the spirit of Tower and Finagle.

A layer is a class whose instances are called as ``await layer(request, next)``.
It may look at or change the request, call ``next`` (the rest of the stack)
zero, one or several times, and return or change the response::

    class FixedDelay(Layer):
        class Params(BaseModel):
            model_config = ConfigDict(extra="forbid")
            endpoint: str = "/task/cpu"
            delay_ms: float = 5.0

        async def __call__(self, request, next):
            if request.endpoint == self.params.endpoint:
                await asyncio.sleep(self.params.delay_ms / 1000)
                self.count("delayed")
            return await next(request)

``Params`` is a pydantic model: the stack validates the layer's parameters
against it (``extra="forbid"`` makes a misspelt parameter an error that names
it). The stack constructs the layer once per configuration as
``cls(params, context)``; the :class:`LayerContext` gives the service's shared
parts (metrics, the Dask client, the key store, the configuration in force).
Every layer is measured the same way by the stack (requests in and out, time
spent inside it excluding ``next``); :meth:`Layer.count` adds its own outcomes,
all under the layer's name as the ``layer`` label of ``/metrics``.

A layer must not block the event loop: work that takes time belongs to the
executor (the terminal layer), which runs it on the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from scalelab.service.request import Next, Request, Response

if TYPE_CHECKING:
    from distributed import Client

    from scalelab.config import ServiceConfig
    from scalelab.service.cache_origin import KeyStore
    from scalelab.service.metrics import ServiceMetrics


class NoParams(BaseModel):
    """The parameters of a layer that takes none."""

    model_config = ConfigDict(extra="forbid")


class StallClock:
    """A stall of the data plane (``POST /admin/stall``), shared by every stack."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until = 0.0

    def stall(self, seconds: float) -> float:
        """Hold requests arriving in the next ``seconds``; return the end (monotonic)."""
        self.until = self.clock() + seconds
        return self.until

    def left(self) -> float:
        """Seconds left in the current stall (0 when none)."""
        return max(0.0, self.until - self.clock()) if self.until else 0.0


@dataclass
class LayerContext:
    """What a layer may use of the service: shared state that outlives any one stack."""

    metrics: ServiceMetrics
    store: KeyStore
    config: Callable[[], ServiceConfig]
    client: Callable[[], Client | None]
    stall: StallClock = field(default_factory=StallClock)
    shared: dict[str, Any] = field(default_factory=dict)
    """State layers keep across stack rebuilds, by a name of their choosing."""


class Layer:
    """Base class of every layer; subclass it and implement :meth:`__call__`.

    ``terminal`` layers end the stack (they never call ``next``): the executor is
    the built-in one.
    """

    Params: ClassVar[type[BaseModel]] = NoParams
    terminal: ClassVar[bool] = False

    def __init__(self, params: Any, context: LayerContext) -> None:
        self.params = params
        self.context = context
        self.name = type(self).__name__
        """The name the configuration gives this layer (set by the stack)."""

    @classmethod
    def check(cls, params: Any, field: str) -> None:
        """Refuse parameters that validate but cannot work (a plugin that does not load...),
        before anything is built: raise :class:`~scalelab.errors.PluginError` naming the field."""

    async def __call__(self, request: Request, next: Next) -> Response:
        """Handle one request; the base class passes it on unchanged."""
        return await next(request)

    def count(self, outcome: str, amount: float = 1.0) -> None:
        """Count one of this layer's own outcomes (``shed``, ``hit``, ``retried``...)."""
        self.context.metrics.layer_outcome(self.name, outcome, amount)

    def gauge(self, name: str, value: float) -> None:
        """Set one of this layer's state gauges (``state``, ``limit``...) in ``/metrics``."""
        self.context.metrics.layer_state.labels(self.name, name).set(value)

    async def close(self) -> None:
        """Release what the layer holds; called once no request uses it any more."""
        return None

    def describe(self) -> dict[str, Any]:
        """What ``GET /admin/stack`` shows of this layer."""
        params = self.params.model_dump(mode="json") if isinstance(self.params, BaseModel) else {}
        cls = type(self)
        return {
            "name": self.name,
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "params": params,
        }
