"""Partitioning scenario: queries over the partitioned orders of ``/data``.

Run it against a service with the data loaded, e.g.::

    scalelab serve --config scenarios/data_service.toml &
    locust -f scenarios/data.py --host http://127.0.0.1:8000                     # web UI
    locust -f scenarios/data.py --host http://127.0.0.1:8000 --headless -u 16 -t 20s \\
        --query mix --mix lookup=8,range=1,groupby=1 --dist zipf --alpha 1.0 \\
        --results-dir results/try

Knobs: ``--query lookup|range|groupby|join|write|mix`` (``--mix`` weights the
kinds, e.g. ``lookup=8,range=2``); keys of lookups and joins (customer ids, or
order ids when the router's key is ``order_id``) are drawn by
``scalelab.loadgen.keys`` (``--dist``, ``--alpha``, ``--hot-keys``...;
``--keys 0``, the default, takes every key of the dataset); ``--range-share``
is the width of a range scan as a share of the column's span
(``--range-column ts``); ``--write-batch`` orders per write; ``--limit`` rows
returned. The dataset's size is read once from ``GET /data/info``. One key
sequence per Locust process, seeded from ``--seed``.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from typing import Any

from locust import events

from scalelab.loadgen import RECORDER, ScaleLabUser
from scalelab.loadgen.keys import KeyDistribution, add_key_arguments, distribution_from_spec

KINDS = ("lookup", "range", "groupby", "join", "write")
_shared: dict[str, Any] = {}


@events.init_command_line_parser.add_listener
def _knobs(parser: Any, **_: Any) -> None:
    add_key_arguments(parser)
    parser.set_defaults(keys=0)
    parser.add_argument(
        "--query", choices=(*KINDS, "mix"), default="lookup", help="The query each request makes"
    )
    parser.add_argument(
        "--mix", default="lookup=8,range=1,groupby=1", help="--query mix: weights per kind"
    )
    parser.add_argument(
        "--range-share", type=float, default=0.01, help="Range width, share of the column's span"
    )
    parser.add_argument(
        "--range-column", default="ts", help="Column of range scans (ts, order_id, customer_id)"
    )
    parser.add_argument("--write-batch", type=int, default=100, help="Orders per write")
    parser.add_argument("--limit", type=int, default=10, help="Rows a read returns")


def parse_mix(text: str) -> dict[str, float]:
    """``lookup=8,range=1`` as weights; a bad entry names itself."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, weight = part.partition("=")
        if kind not in KINDS or not sep:
            raise ValueError(
                f"--mix {text!r}: {part!r} is not <kind>=<weight> ({', '.join(KINDS)})"
            )
        weights[kind] = float(weight)
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"--mix {text!r}: give at least one positive weight")
    return weights


def _setup(host: str, options: Any, seed: int) -> dict[str, Any]:
    """The dataset's description, this process's key sequence and its random draws."""
    if not _shared:
        try:
            with urllib.request.urlopen(f"{host}/data/info", timeout=30) as answer:
                info = json.load(answer)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"GET {host}/data/info answered {exc.code}: the service has no data loaded; "
                "start it with a router in its stack, e.g. "
                "`scalelab serve --config scenarios/data_service.toml`"
            ) from None
        keys = int(options.keys) or (
            int(info["rows"]) if info.get("key") == "order_id" else int(info["customers"])
        )
        knobs = {k: getattr(options, k) for k in ("dist", "alpha", "hot_keys", "hot_share")}
        knobs.update(keys=keys, shift_every_s=options.shift_every_s, shift_keys=options.shift_keys)
        process = RECORDER.process_index()
        dist: KeyDistribution = distribution_from_spec(knobs, seed=seed * 1000 + process)
        _shared.update(
            info=info,
            dist=dist,
            rng=random.Random(f"data-scenario:{seed}:{process}"),
        )
    return _shared


class Data(ScaleLabUser):
    """Queries of the partitioned orders, as ``--query`` (or ``--mix``) says."""

    def on_start(self) -> None:
        """Read the dataset's size once, and fix this user's mix of queries."""
        super().on_start()
        o = self.environment.parsed_options
        shared = _setup(self.host, o, self.load.seed)
        self._info, self._dist, self._rng = shared["info"], shared["dist"], shared["rng"]
        weights = parse_mix(o.mix) if o.query == "mix" else {o.query: 1.0}
        self._kinds, self._weights = list(weights), list(weights.values())
        self._limit = int(o.limit)
        self._batch = max(1, int(o.write_batch))
        self._column = o.range_column
        share = min(max(float(o.range_share), 0.0), 1.0)
        span = self._span(self._column)
        self._width = max(int((span[1] - span[0]) * share), 0)

    def _span(self, column: str) -> tuple[int, int]:
        info = self._info
        if column == "ts":
            return int(info["ts_min"]), int(info["ts_max"])
        if column == "order_id":
            return 0, int(info["rows"]) - 1
        return 0, int(info["customers"]) - 1

    def call(self, ctx: dict[str, Any]) -> None:
        """One query of a kind drawn from the mix."""
        kind = (
            self._rng.choices(self._kinds, self._weights)[0]
            if len(self._kinds) > 1
            else self._kinds[0]
        )
        client = self.client
        if kind == "lookup":
            key = self._dist.index()
            client.get(f"/data/lookup/{key}?limit={self._limit}", name="/data/lookup", context=ctx)
        elif kind == "range":
            low, high = self._span(self._column)
            start = self._rng.randint(low, max(low, high - self._width))
            query = (
                f"column={self._column}&low={start}&high={start + self._width}&limit={self._limit}"
            )
            client.get(f"/data/range?{query}", name="/data/range", context=ctx)
        elif kind == "groupby":
            client.get("/data/groupby?by=region&agg=sum", name="/data/groupby", context=ctx)
        elif kind == "join":
            key = self._dist.index()
            client.get(f"/data/join?by=segment&customer={key}", name="/data/join", context=ctx)
        else:
            customers = int(self._info["customers"])
            rows = [
                {"customer_id": self._dist.index() % customers, "amount": 10.0}
                for _ in range(self._batch)
            ]
            client.post("/data/orders", json={"rows": rows}, name="/data/orders", context=ctx)
