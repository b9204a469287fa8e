"""scalelab's load generator: the only scalelab package imported inside Locust.

It imports nothing from Dask or pandas. Imported by a locustfile (inside a
Locust process), it registers the recorder on Locust's events and adds
scalelab's arguments to Locust's command line. Imported anywhere else (a test,
a notebook kernel) it imports no Locust at all: its pure parts
(:mod:`~scalelab.loadgen.arrivals`, :mod:`~scalelab.loadgen.records`,
:mod:`~scalelab.loadgen.profiles`, :mod:`~scalelab.loadgen.args`) are usable
without gevent's monkey-patching.

A scenario (see ``scenarios/baseline.py``)::

    from scalelab.loadgen import ScaleLabUser

    class Baseline(ScaleLabUser):
        def call(self, ctx):
            self.client.get("/task/cpu?units=200", name="/task/cpu", context=ctx)

``call`` makes one request; :class:`ScaleLabUser` runs it as a closed loop
(users and a wait time) or an open loop (an arrival rate) as ``--load-mode``
says. Shapes: ``--shape step|ramp|spike`` (classes :class:`StepShape`,
:class:`RampShape`, :class:`SpikeShape`).

The invocation the orchestrator uses (and the only one it needs)::

    python -m locust -f LOCUSTFILE --headless --host URL -u USERS -r SPAWN_RATE -t Ns
        --stop-timeout 5 --exit-code-on-error 0
        --csv DIR/locust/stats --html DIR/locust/report.html --logfile DIR/locust/locust.log
        --results-dir DIR --load-mode closed|open
        [--rate R --arrival constant|poisson --max-concurrency N] [--late-ms MS] [--seed S]
        [--wait-mode none|constant|constant_throughput --wait-value X]
        [--processes N]
        [--shape step|ramp|spike [--step-users N --step-time S | --ramp-time S
                                  | --spike-at S --spike-time S --spike-base F]]
        [scenario knobs as --key value]

In open mode ``-u`` is the number of drivers, one per process (so ``-u`` equals
the process count); ``--rate`` and ``--max-concurrency`` are totals, split
evenly over the drivers. After Locust exits, ``DIR`` holds (even with zero
requests):

- ``requests.parquet``: one row per request Locust counted (columns as in
  docs/results-format.md), from all processes; an arrival the open loop dropped
  is a row whose method is ``DROPPED``;
- ``latency.hdr``: HdrHistogram log, tags ``intended`` and ``actual`` (merged
  across processes; dropped open-loop requests are rows but not in it);
- ``loadgen.json``: the load model and, per process and in total, the
  requests, errors and the open loop's ``scheduled``, ``sent``, ``late``,
  ``dropped`` and ``max_in_flight`` counts.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ScaleLabUser": "scalelab.loadgen.users",
    "OpenLoopDropped": "scalelab.loadgen.users",
    "StepShape": "scalelab.loadgen.shapes",
    "RampShape": "scalelab.loadgen.shapes",
    "SpikeShape": "scalelab.loadgen.shapes",
    "RECORDER": "scalelab.loadgen.recorder",
    "LoadOptions": "scalelab.loadgen.args",
    "arrival_offsets": "scalelab.loadgen.arrivals",
    "RequestLog": "scalelab.loadgen.records",
    "SCHEMA": "scalelab.loadgen.records",
}

__all__ = [
    "RECORDER",
    "SCHEMA",
    "LoadOptions",
    "OpenLoopDropped",
    "RampShape",
    "RequestLog",
    "ScaleLabUser",
    "SpikeShape",
    "StepShape",
    "arrival_offsets",
]

if TYPE_CHECKING:
    from scalelab.loadgen.args import LoadOptions
    from scalelab.loadgen.arrivals import arrival_offsets
    from scalelab.loadgen.recorder import RECORDER
    from scalelab.loadgen.records import SCHEMA, RequestLog
    from scalelab.loadgen.shapes import RampShape, SpikeShape, StepShape
    from scalelab.loadgen.users import OpenLoopDropped, ScaleLabUser


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scalelab.loadgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if "locust" in sys.modules:
    # Inside a Locust process: register the recorder and the arguments now, before
    # Locust builds its parser, whatever the locustfile goes on to import.
    importlib.import_module("scalelab.loadgen.recorder")
