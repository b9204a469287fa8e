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

from scalelab.service.layer import Layer
from scalelab.service.layers.admission import Admission
from scalelab.service.layers.breaker import Breaker
from scalelab.service.layers.cache import Cache
from scalelab.service.layers.execute import ExecutorLayer
from scalelab.service.layers.faults import Faults
from scalelab.service.layers.hedge import Hedge
from scalelab.service.layers.limit import Limit
from scalelab.service.layers.retry import Retry
from scalelab.service.layers.router import Router
from scalelab.service.layers.timeout import Timeout

BUILTIN: dict[str, type[Layer]] = {
    "admission": Admission,
    "faults": Faults,
    "cache": Cache,
    "timeout": Timeout,
    "retry": Retry,
    "breaker": Breaker,
    "hedge": Hedge,
    "limit": Limit,
    "router": Router,
    "executor": ExecutorLayer,
}
"""Built-in layers by name (``executor`` always ends the stack)."""

__all__ = [
    "BUILTIN",
    "Admission",
    "Breaker",
    "Cache",
    "ExecutorLayer",
    "Faults",
    "Hedge",
    "Limit",
    "Retry",
    "Router",
    "Timeout",
]
