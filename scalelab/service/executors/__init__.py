"""Executors, the terminal layer's engines: how requests become work on the Dask cluster.

- ``direct`` (:class:`DirectExecutor`): one Dask task per request.
- ``batched`` (:class:`BatchedExecutor`): group commit; one task per batch of requests.
- ``actor`` (:class:`ActorExecutor`): one stateful Dask actor per worker, called
  directly, without the scheduler on the request path.

A user class plugs in by import path (``executor.kind = "module:Class"``): it
subclasses :class:`Executor` (or provides the same methods), and its
parameters come from ``executor.params``, checked against its ``Params`` model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from scalelab.config import ServiceConfig
from scalelab.errors import PluginError
from scalelab.service.executors.actor import ActorExecutor, ActorLost
from scalelab.service.executors.base import Executor, NoParams, TaskResult
from scalelab.service.executors.batched import BatchedExecutor
from scalelab.service.executors.direct import DirectExecutor
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.plugins import load_plugin, validate_params

if TYPE_CHECKING:
    from distributed import Client

# The public home of the extension point, as messages and docs name it.
Executor.__module__ = TaskResult.__module__ = __name__

EXECUTORS: dict[str, type[Executor]] = {
    "direct": DirectExecutor,
    "batched": BatchedExecutor,
    "actor": ActorExecutor,
}
"""Built-in executors by the name ``executor.kind`` uses."""


def executor_class(kind: str) -> type[Executor]:
    """The class for ``executor.kind``: a built-in name or a ``module:Class`` path."""
    if kind in EXECUTORS:
        return EXECUTORS[kind]
    if ":" not in kind:
        raise PluginError(
            f"executor.kind = {kind!r}: unknown executor; use one of {', '.join(EXECUTORS)} "
            "or 'module:Class' naming an Executor"
        )
    return load_plugin(kind, Executor, "executor.kind")


def executor_params(cls: type[Executor], kind: str, raw: dict[str, Any]) -> BaseModel:
    """A user executor's ``executor.params`` checked against its ``Params`` model."""
    if kind in EXECUTORS and raw:
        raise PluginError(
            f"executor.params: the built-in executor {kind!r} takes its settings from the "
            "[executor] section itself (max_batch, max_wait_ms, choice); leave params empty",
            "executor.params",
        )
    return validate_params(cls, raw, "executor.params")


def make_executor(client: Client, config: ServiceConfig, metrics: ServiceMetrics) -> Executor:
    """Construct the executor ``config.executor.kind`` names, with its parameters.

    A user executor's parameters (``executor.params``) are checked against its
    ``Params`` model; built-ins read their fields of the ``executor`` section.
    """
    kind = config.executor.kind
    cls = executor_class(kind)
    params = executor_params(cls, kind, config.executor.params)
    try:
        executor = cls(client, config, metrics)
    except Exception as exc:
        raise PluginError(
            f"executor.kind = {kind!r}: {cls.__qualname__}(client, config, metrics) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    executor.params = params
    return executor


__all__ = [
    "EXECUTORS",
    "ActorExecutor",
    "ActorLost",
    "BatchedExecutor",
    "DirectExecutor",
    "Executor",
    "NoParams",
    "TaskResult",
    "executor_class",
    "executor_params",
    "make_executor",
]
