"""Baseline scenario: one endpoint of the task service, closed or open loop.

Run it against ``scalelab serve`` with plain Locust::

    locust -f scenarios/baseline.py --host http://127.0.0.1:8000            # web UI
    locust -f scenarios/baseline.py --host http://127.0.0.1:8000 --headless -u 20 -r 10 -t 30s \\
        --endpoint io --io-ms 20 --io-dist exponential --results-dir results/try

Knobs (Locust custom arguments, also in the web UI): ``--endpoint ping|cpu|io``
(default cpu), ``--units N`` for /task/cpu, ``--io-ms X``, ``--io-dist
fixed|exponential|bimodal``, ``--io-slow-ms``, ``--io-slow-frac``,
``--io-seeded`` (each request carries a seed drawn from ``--seed``, so a run's
delays are reproducible) and ``--io-local`` for /task/io. The load model is
scalelab's: ``--load-mode closed|open``, ``--rate``, ``--arrival`` and the
rest (see ``scalelab.loadgen``).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from locust import events

from scalelab.loadgen import RECORDER, ScaleLabUser

ENDPOINTS = ("ping", "cpu", "io")
_user_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _knobs(parser: Any, **_: Any) -> None:
    parser.add_argument("--endpoint", choices=ENDPOINTS, default="cpu", help="Endpoint to load")
    parser.add_argument("--units", type=int, default=200, help="/task/cpu: units of CPU work")
    parser.add_argument("--io-ms", type=float, default=10.0, help="/task/io: delay (or mean) in ms")
    parser.add_argument(
        "--io-dist",
        choices=("fixed", "exponential", "bimodal"),
        default="fixed",
        help="/task/io: delay distribution",
    )
    parser.add_argument(
        "--io-slow-ms", type=float, default=0.0, help="/task/io bimodal: slow delay"
    )
    parser.add_argument(
        "--io-slow-frac", type=float, default=0.0, help="/task/io bimodal: share of slow delays"
    )
    parser.add_argument(
        "--io-seeded", action="store_true", default=False, help="/task/io: seed each request's draw"
    )
    parser.add_argument(
        "--io-local", action="store_true", default=False, help="/task/io: sleep in the service"
    )


class Baseline(ScaleLabUser):
    """Loads one endpoint of the task service (chosen by ``--endpoint``)."""

    def on_start(self) -> None:
        """Fix the request path once and seed the per-request draws."""
        super().on_start()
        o = self.environment.parsed_options
        endpoint = getattr(o, "endpoint", "cpu")
        if endpoint == "ping":
            self._path, self._name, self._params = "/ping", "/ping", {}
        elif endpoint == "io":
            params: dict[str, Any] = {"ms": o.io_ms, "dist": o.io_dist}
            if o.io_dist == "bimodal":
                params.update(slow_ms=o.io_slow_ms, slow_frac=o.io_slow_frac)
            if o.io_local:
                params["local"] = "true"
            self._path, self._name, self._params = "/task/io", "/task/io", params
        else:
            self._path, self._name, self._params = "/task/cpu", "/task/cpu", {"units": o.units}
        self._seeds = (
            random.Random(
                f"baseline:{self.load.seed}:{RECORDER.process_index()}:{next(_user_numbers)}"
            )
            if endpoint == "io" and o.io_seeded
            else None
        )

    def call(self, ctx: dict[str, Any]) -> None:
        """One request to the chosen endpoint."""
        params = self._params
        if self._seeds is not None:
            params = {**params, "seed": self._seeds.randrange(2**31)}
        if params:
            self.client.get(self._path, params=params, name=self._name, context=ctx)
        else:  # /ping: no query string to encode
            self.client.get(self._path, name=self._name, context=ctx)
