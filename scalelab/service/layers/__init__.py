"""The built-in layers, by the name the configuration's ``stack`` uses.

- ``admission`` (:class:`~.admission.Admission`): load shedding;
- ``faults`` (:class:`~.faults.Faults`): the ingress fault point;
- ``cache`` (:class:`~.cache.Cache`): the cache in front of keyed reads;
- ``timeout``, ``retry``, ``breaker``, ``hedge``, ``limit``: failure handling
  (:mod:`.timeout`, :mod:`.retry`, :mod:`.breaker`, :mod:`.hedge`, :mod:`.limit`);
- ``router`` (:class:`~.router.Router`): partitioned data for ``/data`` queries;
- ``executor`` (:class:`~.execute.ExecutorLayer`): the terminal layer.

Each takes its parameters from the configuration section of its name. A user
layer subclasses :class:`scalelab.service.layer.Layer` and is named in the
stack as ``module:Class`` (see docs/architecture.md).
"""

from __future__ import annotations

import importlib

from scalelab.service.layer import Layer

BUILTIN_PATHS: dict[str, str] = {
    "admission": "scalelab.service.layers.admission:Admission",
    "faults": "scalelab.service.layers.faults:Faults",
    "cache": "scalelab.service.layers.cache:Cache",
    "timeout": "scalelab.service.layers.timeout:Timeout",
    "retry": "scalelab.service.layers.retry:Retry",
    "breaker": "scalelab.service.layers.breaker:Breaker",
    "hedge": "scalelab.service.layers.hedge:Hedge",
    "limit": "scalelab.service.layers.limit:Limit",
    "router": "scalelab.service.layers.router:Router",
    "executor": "scalelab.service.layers.execute:ExecutorLayer",
}
"""Built-in layers by name (``executor`` always ends the stack), imported when first used:
a service without a router never loads the data engines (pandas, pyarrow)."""


def builtin_layer(name: str) -> type[Layer] | None:
    """The built-in layer class called ``name``, or None when there is none."""
    path = BUILTIN_PATHS.get(name)
    if path is None:
        return None
    module, _, attr = path.partition(":")
    cls: type[Layer] = getattr(importlib.import_module(module), attr)
    return cls


__all__ = ["BUILTIN_PATHS", "builtin_layer"]
