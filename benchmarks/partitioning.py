"""Benchmarks of the partitioning lab, each measured as a ratio within one run.

    .venv/bin/python benchmarks/partitioning.py                     # all four
    .venv/bin/python benchmarks/partitioning.py --only keys_moved,index --seconds 10
    .venv/bin/python benchmarks/run.py --only pruning               # registered there too

- ``pruning``: point lookups pruned to one partition (the router knows the
  divisions) against the same lookups scanning every partition; target >= 5x.
- ``keys_moved``: the share of keys that move when a partition (a worker)
  joins: a consistent-hash ring against 1/(n+1) (target: within 10 %), modulo
  hashing against n/(n+1).
- ``hot_split``: load imbalance (max/mean of requests per partition, or per
  copy) under Zipf(1.0) lookups, with the hot partition left alone, split, and
  replicated.
- ``index``: indexed against unindexed point lookups in the embedded database
  (SQLite per partition), through the service and in SQLite alone.

Each benchmark starts its own service (``scalelab serve``, a LocalCluster of two
workers) and drives it from this process with an asynchronous HTTP client; this
process never imports Locust.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from scalelab.config import ServiceConfig  # noqa: E402
from scalelab.loadgen.keys import make_distribution  # noqa: E402

ROWS, CUSTOMERS = 200_000, 10_000
DATA = Path(tempfile.gettempdir()) / "scalelab-bench-data"


@dataclass
class Result:
    """One figure: measured against a baseline from the same run, and its target."""

    name: str
    measured: float
    baseline: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.measured / self.baseline if self.baseline else None

    def line(self) -> str:
        text = f"{self.name}: {self.measured:,.4g} {self.unit}"
        if self.baseline is not None:
            text += f" vs {self.baseline:,.4g}"
            if self.ratio is not None:
                text += f"; ratio {self.ratio:.3g}"
        if self.target:
            verdict = "met" if self.met else "NOT MET"
            text += f"; target {self.target}: {verdict}"
        if self.note:
            text += f" ({self.note})"
        return text


def _seconds(arg: Any) -> float:
    """``benchmarks/run.py`` passes seconds, or options carrying them."""
    return float(getattr(arg, "seconds", arg))


@contextmanager
def _service(router: dict[str, Any], workers: int = 2, rows: int = ROWS) -> Iterator[Any]:
    from scalelab.service.process import start_service

    dataset = {"rows": rows, "customers": CUSTOMERS, "path": str(DATA / f"orders-{rows}")}
    config = ServiceConfig.model_validate(
        {
            "stack": ["admission", "router"],
            "cluster": {"workers": workers, "threads_per_worker": 1},
            "router": {**router, "dataset": {**dataset, **router.get("dataset", {})}},
        }
    )
    with start_service(config, ready_timeout_s=300) as service:
        yield service


def _configure(url: str, router: dict[str, Any]) -> None:
    answer = httpx.put(f"{url}/admin/config", json={"router": router}, timeout=300)
    if answer.status_code != 200:
        raise SystemExit(f"PUT /admin/config {router}: {answer.status_code} {answer.text}")


async def _drive(url: str, paths: Callable[[int], str], seconds: float, concurrency: int) -> float:
    """Requests per second over ``seconds`` (after a 1 s warm-up), ``concurrency`` in flight."""
    done = 0
    failed = 0
    measuring = False
    stop_at = time.monotonic() + 1.0 + seconds
    counter = iter(range(10**12))

    async def loop(client: httpx.AsyncClient) -> None:
        nonlocal done, failed
        while time.monotonic() < stop_at:
            response = await client.get(paths(next(counter)))
            if response.status_code != 200:
                failed += 1
            elif measuring:
                done += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        tasks = [asyncio.create_task(loop(client)) for _ in range(concurrency)]
        await asyncio.sleep(1.0)
        measuring, started = True, time.monotonic()
        await asyncio.gather(*tasks)
    if failed:
        raise SystemExit(f"{failed} requests failed while measuring {url}")
    return done / (time.monotonic() - started)


def _metric(url: str, name: str) -> dict[str, float]:
    """A labelled counter's samples by their one label's value."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for label, value in re.findall(rf'^{re.escape(name)}\{{\w+="([^"]*)"\}} (\S+)$', text, re.M):
        out[label] = float(value)
    return out


def bench_pruning(arg: Any) -> list[Result]:
    """Point lookups pruned to one partition against the same lookups scanning all 16."""
    seconds = _seconds(arg)
    keys = make_distribution("uniform", CUSTOMERS, seed=1)
    with _service({"partitions": 16, "engine": "memory"}) as service:
        lookups = lambda i: f"/data/lookup/{keys.index()}?limit=10"  # noqa: E731
        pruned = asyncio.run(_drive(service.url, lookups, seconds, 16))
        _configure(service.url, {"divisions": False})
        full = asyncio.run(_drive(service.url, lookups, seconds, 16))
    return [
        Result(
            "point lookup pruned to 1 of 16 partitions vs scanning all 16",
            pruned,
            full,
            "req/s",
            ">= 5x",
            pruned >= 5 * full,
            f"{ROWS:,} orders, memory engine, 16 in flight",
        )
    ]


def bench_keys_moved(arg: Any) -> list[Result]:
    """Keys moved when a partition joins n: a ring against 1/(n+1), modulo against n/(n+1)."""
    from scalelab.data.partitioners import ConsistentHash, ModuloHash, moved_fraction

    keys = np.arange(100_000)
    out = []
    for n in (2, 4, 8):
        ring = moved_fraction(ConsistentHash(n), ConsistentHash(n + 1), keys)
        modulo = moved_fraction(ModuloHash(n), ModuloHash(n + 1), keys)
        out.append(
            Result(
                f"keys moved, consistent hashing, {n} -> {n + 1} partitions",
                ring,
                1 / (n + 1),
                "share",
                "within 10 % of 1/(n+1)",
                abs(ring * (n + 1) - 1) <= 0.10,
                "256 virtual nodes each, 100,000 keys",
            )
        )
        out.append(
            Result(
                f"keys moved, modulo hashing, {n} -> {n + 1} partitions",
                modulo,
                n / (n + 1),
                "share",
                "about n/(n+1)",
                abs(modulo * (n + 1) / n - 1) <= 0.05,
            )
        )
    return out


async def _zipf_lookups(url: str, seconds: float, seed: int) -> None:
    keys = make_distribution("zipf", CUSTOMERS, seed=seed, alpha=1.0)
    await _drive(url, lambda i: f"/data/lookup/{keys.index()}?limit=1", seconds, 16)


def _expected_imbalance(mode: str, moves: list[dict[str, Any]]) -> float:
    """Max/mean per partition copy that Zipf(1.0) popularity predicts for the layout."""
    from scalelab.analysis.partitioning import expected_partition_load
    from scalelab.data.partitioners import ModuloHash, SplitHot
    from scalelab.loadgen.keys import zipf_weights

    keys = np.arange(CUSTOMERS)
    popularity = zipf_weights(CUSTOMERS, 1.0)
    base = ModuloHash(8)
    acted = [m for m in moves if m["cause"] == mode]
    hot = acted[0]["partition"] if acted else None
    if mode == "split" and hot is not None:
        return _max_over_mean(
            expected_partition_load(popularity, SplitHot(base, {hot: 4}).partition_many(keys))
        )
    loads = list(expected_partition_load(popularity, base.partition_many(keys)))
    if mode == "replicate" and hot is not None:
        share = loads[hot] / 4
        loads[hot] = share
        loads += [share] * 3
    return _max_over_mean(np.asarray(loads))


def _max_over_mean(loads: np.ndarray) -> float:
    return float(loads.max() / loads.mean())


def _imbalance_over(url: str, seconds: float) -> tuple[float, float]:
    """Max/mean of requests per partition copy, and per worker, over a Zipf(1.0) load."""
    before = _metric(url, "scalelab_partition_requests_total")
    workers_before = _metric(url, "scalelab_worker_requests_total")
    asyncio.run(_zipf_lookups(url, seconds, seed=3))
    after = _metric(url, "scalelab_partition_requests_total")
    workers_after = _metric(url, "scalelab_worker_requests_total")
    layout = httpx.get(f"{url}/admin/data", timeout=30).json()["partitions"]
    loads = []
    for part in layout:
        served = after.get(str(part["partition"]), 0.0) - before.get(str(part["partition"]), 0.0)
        loads += [served / len(part["workers"])] * len(part["workers"])
    per_worker = [v - workers_before.get(w, 0.0) for w, v in workers_after.items()]
    return max(loads) / statistics.mean(loads), max(per_worker) / statistics.mean(per_worker)


def bench_hot_split(arg: Any) -> list[Result]:
    """Imbalance under Zipf(1.0): the hot partition left alone, split in 4, replicated 4 ways."""
    seconds = _seconds(arg)
    out = []
    figures: dict[str, tuple[float, float, float]] = {}
    for mode in ("off", "split", "replicate"):
        hot = {"mode": mode, "threshold": 1.5, "ways": 4, "check_s": 2.0, "min_requests": 40}
        with _service({"partitions": 8, "engine": "memory", "hot": hot}, workers=4) as service:
            moves: list[dict[str, Any]] = []
            for _ in range(15 if mode != "off" else 0):  # until the router sees the skew, acts
                asyncio.run(_zipf_lookups(service.url, 2.0, seed=2))
                moves = httpx.get(f"{service.url}/admin/data", timeout=30).json()["moves"]
                if any(m["cause"] == mode for m in moves):
                    break
            else:
                if mode != "off":
                    raise SystemExit(f"hot.mode = {mode}: the router did not act: {moves}")
            measured, per_worker = _imbalance_over(service.url, seconds)
            figures[mode] = (measured, per_worker, _expected_imbalance(mode, moves))
    base = figures["off"]
    out.append(
        Result(
            "imbalance max/mean per partition, Zipf(1.0), hot partition left alone",
            base[0],
            base[2],
            "max/mean",
            note=f"baseline: Zipf's prediction for the layout; per worker {base[1]:.2f}",
        )
    )
    for mode, label in (("split", "split in 4"), ("replicate", "replicated 4 ways")):
        measured, per_worker, expected = figures[mode]
        out.append(
            Result(
                f"imbalance max/mean per partition copy, Zipf(1.0), hot partition {label}",
                measured,
                base[0],
                "max/mean",
                note=f"predicted {expected:.2f} (left alone: {base[2]:.2f}); per worker "
                f"{per_worker:.2f} vs {base[1]:.2f}; 8 partitions, 4 workers; baseline: left alone",
            )
        )
    return out


INDEX_ROWS = 1_000_000
"""Orders of the index benchmark: two partitions of half a million, so that a scan of one
(tens of ms) costs more than Dask's round trip and the index shows through the service."""


def bench_index(arg: Any) -> list[Result]:
    """Indexed against unindexed point lookups in SQLite per partition: service, and SQLite."""
    from scalelab.data.config import DatasetSpec
    from scalelab.data.generate import generate_customers, generate_orders
    from scalelab.data.queries import Lookup
    from scalelab.data.sqlite_db import Database, index_statements

    seconds = _seconds(arg)
    keys = make_distribution("uniform", CUSTOMERS, seed=3)
    lookups = lambda i: f"/data/lookup/{keys.index()}?limit=10"  # noqa: E731
    router = {"partitions": 2, "engine": "sqlite", "index": ["customer_id"]}
    with _service(router, rows=INDEX_ROWS) as service:
        indexed = asyncio.run(_drive(service.url, lookups, seconds, 16))
        _configure(service.url, {"index": []})
        plain = asyncio.run(_drive(service.url, lookups, seconds, 16))
    spec = DatasetSpec(rows=INDEX_ROWS // 2, customers=CUSTOMERS)
    orders, customers = generate_orders(spec), generate_customers(spec)
    rates = {}
    for name, ddl in (("indexed", index_statements(["customer_id"], [])), ("plain", [])):
        db = Database(name, orders, customers, ddl)
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < min(seconds, 5.0):
            db.query(Lookup("customer_id", keys.index(), 10), False)
            n += 1
        rates[name] = n / (time.perf_counter() - started)
    return [
        Result(
            "lookup with an index on customer_id vs none, through the service",
            indexed,
            plain,
            "req/s",
            note=f"SQLite per partition, 2 partitions of {INDEX_ROWS // 2:,} orders, 16 in flight",
        ),
        Result(
            "lookup with an index vs none, in SQLite alone (one partition)",
            rates["indexed"],
            rates["plain"],
            "lookups/s",
            note=f"{INDEX_ROWS // 2:,} orders; what the index does without Dask's round trip",
        ),
    ]


BENCHMARKS: dict[str, Callable[[Any], list[Result]]] = {
    "pruning": bench_pruning,
    "keys_moved": bench_keys_moved,
    "hot_split": bench_hot_split,
    "index": bench_index,
}
"""The partitioning benchmarks by name; ``benchmarks/run.py`` registers them as they are."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per load")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    for name in names:
        started = time.monotonic()
        for result in BENCHMARKS[name](args.seconds):
            print(f"[{name}] {result.line()}", flush=True)
        print(f"# {name}: {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
