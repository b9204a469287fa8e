"""Caching scenario: keyed reads (and writes) whose keys follow a chosen distribution.

Each request reads ``GET /task/key/<key>`` (through the service's cache) or,
with probability ``--write-ratio``, writes ``PUT /kv/<key>`` (a new version of
the key, so later cached reads of it are stale until refreshed). Keys are named
``k0 ... k<N-1>`` and drawn by ``scalelab.loadgen.keys``::

    locust -f scenarios/caching.py --host http://127.0.0.1:8000 --headless -u 16 -t 20s \\
        --keys 1000 --dist zipf --alpha 1.0 --units 50 --results-dir results/try

Knobs: ``--keys N``, ``--dist uniform|zipf|hotspot|scan|shifting``,
``--alpha`` (zipf, shifting), ``--hot-keys``/``--hot-share`` (hotspot),
``--shift-every-s``/``--shift-keys`` (shifting), ``--write-ratio`` (share of
requests that write), and the cost of a computation at the origin: ``--units``
(CPU units) and ``--io-ms`` (negative: the service's ``origin`` defaults).
One key sequence per Locust process, shared by its users and seeded from
``--seed`` and the process index, so a cyclic scan stays one scan however many
users share it.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlencode

from locust import events

from scalelab.loadgen import RECORDER, ScaleLabUser
from scalelab.loadgen.keys import KeyDistribution, add_key_arguments, distribution_from_spec

_stream: dict[str, Any] = {}


@events.init_command_line_parser.add_listener
def _knobs(parser: Any, **_: Any) -> None:
    add_key_arguments(parser)
    parser.add_argument(
        "--write-ratio", type=float, default=0.0, help="Share of requests that write (PUT /kv)"
    )
    parser.add_argument(
        "--units", type=int, default=-1, help="CPU units per computation (-1: the service's)"
    )
    parser.add_argument(
        "--io-ms", type=float, default=-1.0, help="I/O ms per computation (-1: the service's)"
    )


def _shared(options: Any, seed: int) -> tuple[KeyDistribution, random.Random, float]:
    """This process's key sequence, its write coin, and when its load began."""
    if not _stream:
        knobs = {k: getattr(options, k) for k in ("keys", "dist", "alpha", "hot_keys")}
        knobs.update(
            hot_share=options.hot_share,
            shift_every_s=options.shift_every_s,
            shift_keys=options.shift_keys,
        )
        process = RECORDER.process_index()
        _stream["dist"] = distribution_from_spec(knobs, seed=seed * 1000 + process)
        _stream["coin"] = random.Random(f"caching-writes:{seed}:{process}")
        _stream["t0"] = time.time()
    return _stream["dist"], _stream["coin"], _stream["t0"]


class Caching(ScaleLabUser):
    """Reads (and writes) keys drawn from one distribution shared by the process's users."""

    def on_start(self) -> None:
        """Join the process's key sequence and fix the request's cost."""
        super().on_start()
        o = self.environment.parsed_options
        ratio = float(getattr(o, "write_ratio", 0.0))
        if not 0 <= ratio <= 1:
            raise ValueError(f"--write-ratio {ratio}: give a fraction in [0, 1]")
        self._write_ratio = ratio
        self._dist, self._coin, self._t0 = _shared(o, self.load.seed)
        params: dict[str, Any] = {}
        if getattr(o, "units", -1) >= 0:
            params["units"] = o.units
        if getattr(o, "io_ms", -1.0) >= 0:
            params["io_ms"] = o.io_ms
        self._query = f"?{urlencode(params)}" if params else ""

    def call(self, ctx: dict[str, Any]) -> None:
        """One read of a key through the cache, or a write of it."""
        key = self._dist.key(time.time() - self._t0)
        if self._write_ratio and self._coin.random() < self._write_ratio:
            self.client.put(f"/kv/{key}", name="/kv", context=ctx)
        else:
            self.client.get(f"/task/key/{key}{self._query}", name="/task/key", context=ctx)
