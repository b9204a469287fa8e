"""scalelab: a performance testing lab for scalable task architectures.

The public API is what this module exports. Names are imported lazily, so that
``import scalelab.loadgen`` inside a Locust process pulls in no Dask and no
pandas machinery it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ServiceConfig": "scalelab.config",
    "load_config": "scalelab.config",
    "ScaleLabError": "scalelab.errors",
    "ConfigError": "scalelab.errors",
    "SpecError": "scalelab.errors",
    "PluginError": "scalelab.errors",
    "RunError": "scalelab.errors",
    "ExperimentSpec": "scalelab.experiment.spec",
    "MonitoringSpec": "scalelab.experiment.spec",
    "load_spec": "scalelab.experiment.spec",
    "run_experiment": "scalelab.experiment.runner",
    "ExperimentResult": "scalelab.experiment.runner",
    "RunResult": "scalelab.experiment.runner",
    "ExperimentInterrupted": "scalelab.experiment.runner",
    "write_report": "scalelab.report",
    "check": "scalelab.exercises",
    "Layer": "scalelab.service.layer",
    "Request": "scalelab.service.request",
    "Response": "scalelab.service.request",
    "Executor": "scalelab.service.executors",
    "TaskResult": "scalelab.service.executors",
    "EvictionPolicy": "scalelab.service.cache_policies",
    "RetryPolicy": "scalelab.service.resilience",
    "Backoff": "scalelab.service.resilience",
    "CircuitBreaker": "scalelab.service.resilience",
    "HedgeDelay": "scalelab.service.resilience",
    "ConcurrencyLimit": "scalelab.service.resilience",
    "Partitioner": "scalelab.data.partitioners",
    "HashRing": "scalelab.data.ring",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from scalelab.config import ServiceConfig, load_config
    from scalelab.data.partitioners import Partitioner
    from scalelab.data.ring import HashRing
    from scalelab.errors import ConfigError, PluginError, RunError, ScaleLabError, SpecError
    from scalelab.exercises import check
    from scalelab.experiment.runner import (
        ExperimentInterrupted,
        ExperimentResult,
        RunResult,
        run_experiment,
    )
    from scalelab.experiment.spec import ExperimentSpec, MonitoringSpec, load_spec
    from scalelab.report import write_report
    from scalelab.service.cache_policies import EvictionPolicy
    from scalelab.service.executors import Executor, TaskResult
    from scalelab.service.layer import Layer
    from scalelab.service.request import Request, Response
    from scalelab.service.resilience import (
        Backoff,
        CircuitBreaker,
        ConcurrencyLimit,
        HedgeDelay,
        RetryPolicy,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scalelab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
