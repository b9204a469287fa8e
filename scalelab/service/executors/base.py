"""The executor's contract: how the terminal layer turns a workload call into work on Dask.

An executor is a small class with one job, chosen by ``executor.kind``. It is
constructed as ``cls(client, config, metrics)`` (an asynchronous
:class:`distributed.Client`, the whole service configuration, and the
service's metrics) and then given its parameters as ``self.params`` (its
``Params`` model, from ``executor.params``; built-ins read their fields of
the ``executor`` section). ``run`` computes one call on the cluster and says
which worker ran it; ``close`` finishes or fails whatever is pending. An
executor that must prepare something on the cluster first (actors, say) may
also define ``async def start(self)``, awaited before it takes requests; one
that can run work on a chosen worker (where a partition lives) defines
``async def run_at(self, fn, args, workers)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from scalelab.config import ServiceConfig
from scalelab.service.metrics import ServiceMetrics

if TYPE_CHECKING:
    from distributed import Client


class NoParams(BaseModel):
    """The parameters of an executor that takes none of its own."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class TaskResult:
    """One caller's result, the Dask worker that computed it, and its batch's size."""

    value: Any
    worker: str
    batch_size: int = 1


class Executor:
    """Runs workload calls on the cluster. Subclass it to add a kind of executor."""

    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, client: Client, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        self.client = client
        self.config = config
        self.metrics = metrics
        self.params: Any = NoParams()

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> TaskResult:
        """Compute ``fn(*args)`` on a Dask worker and return the result with its worker."""
        raise NotImplementedError

    async def close(self) -> None:
        """Finish or fail whatever is pending; called when the executor is replaced or stops."""
        return None
