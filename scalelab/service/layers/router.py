"""``router``: partitioned data behind the stack: key to partition, partition to worker.

Queries of ``/data/...`` arrive as requests carrying a
:class:`~scalelab.data.queries.Query`. The router plans each against the
layout in force (:class:`~scalelab.data.partitions.PartitionSet`: which
partitions, and what pruned the others), sends one sub-request per partition
down the rest of the stack (its work: that partition's part of the query,
placed on the partition's worker with ``workers=`` when ``placement =
"pinned"``, or left to the scheduler when ``"free"``), and merges the answers.
The response says which partitions it touched (``X-Partition``), the rows they
scanned (``X-Rows-Scanned``) and the workers that ran them (``X-Worker``).
Other requests pass through untouched.

The layout is built when the router starts: from the dataset's files, or,
when the configuration changed while the service ran, from the previous
router's partitions (a repartitioning, which counts the keys, rows and bytes
it moved). The previous router serves until the new one is ready, so no
request fails during the move. A hot partition (``[router.hot]``) is split or
replicated the same way, inside one router.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from scalelab.data import sqlite_db, tasks
from scalelab.data.config import RouterConfig
from scalelab.data.layout import DatasetInfo, ensure_dataset
from scalelab.data.metrics import PartitionMetrics
from scalelab.data.partitioners import SplitHot, make_partitioner, partitioner_class
from scalelab.data.partitions import (
    MoveStats,
    PartitionSet,
    add_replicas,
    build_set,
    cluster_workers,
)
from scalelab.data.queries import Insert, PartResult, Query, merge, query_name, run_frame_query
from scalelab.errors import ConfigError, PluginError
from scalelab.service.layer import Layer, LayerContext
from scalelab.service.plugins import validate_params
from scalelab.service.request import Next, NotReady, Request, Response, error

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("scalelab.service")

CURRENT = "router.current"
"""``context.shared`` entry: the layout in force (what the next router repartitions from)."""
MOVES = "router.moves"
"""``context.shared`` entry: every (re)partitioning so far, oldest first."""
METRICS = "router.metrics"

MONITOR_S = 1.0
"""How often the router reads Dask's transfer logs and where its partitions are."""


class Router(Layer):
    """Plans ``/data`` queries over the partitions, fans them out, merges the answers."""

    Params = RouterConfig

    def __init__(self, params: Any, context: LayerContext) -> None:
        super().__init__(params, context)
        self.metrics: PartitionMetrics = context.shared.get(METRICS) or context.shared.setdefault(
            METRICS, PartitionMetrics(context.metrics.registry)
        )
        self.current: PartitionSet | None = None
        self.dataset: DatasetInfo | None = None
        self.moves: list[dict[str, Any]] = context.shared.setdefault(MOVES, [])
        self._monitor: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._window: Counter[int] = Counter()
        self._actions = 0
        self._cursors: dict[str, float] = {}
        self._generation = len(self.moves)
        self._closed = False

    # -- set-up ------------------------------------------------------------------------------

    @classmethod
    def check(cls, params: Any, field: str) -> None:
        """The partitioner loads and takes its parameters; the index DDL runs on SQLite."""
        partitioner_cls = partitioner_class(params.partitioner, f"{field}.partitioner")
        validate_params(partitioner_cls, params.partitioner_params, f"{field}.partitioner_params")
        try:
            sqlite_db.check_ddl(sqlite_db.index_statements(params.index, params.index_ddl))
        except ValueError as exc:
            raise PluginError(f"{field}.index_ddl.{exc}", f"{field}.index_ddl") from None

    def _client(self) -> Client:
        client = self.context.client()
        if client is None:
            raise NotReady("no Dask client yet")
        return client

    def _check_executor(self) -> None:
        from scalelab.service.executors import ActorExecutor, executor_class

        kind = self.context.config().executor.kind
        cls = executor_class(kind)
        if issubclass(cls, ActorExecutor):
            raise PluginError(
                f"router: executor.kind = {kind!r} calls actors, which cannot take a partition "
                "held by Dask as an argument; use 'direct' (or 'batched' with placement = 'free')",
                "executor.kind",
            )
        if self.params.placement == "pinned" and not hasattr(cls, "run_at"):
            raise PluginError(
                f"router.placement = 'pinned' needs an executor that places work on a worker "
                f"(one with run_at, such as 'direct'); executor.kind = {kind!r} has none: use "
                "placement = 'free' or executor.kind = 'direct'",
                "router.placement",
            )

    async def start(self) -> None:
        """Load the dataset into partitions (or repartition the previous router's)."""
        self._check_executor()
        client = self._client()
        try:
            self.dataset = await asyncio.to_thread(ensure_dataset, self.params.dataset)
        except ConfigError as exc:
            raise PluginError(str(exc), "router.dataset") from None
        params = self.params
        partitioner = make_partitioner(
            params.partitioner, params.partitions, params.partitioner_params
        )
        previous: PartitionSet | None = self.context.shared.get(CURRENT)
        if previous is not None and (
            previous.released or previous.dataset.path != self.dataset.path
        ):
            previous = None
        workers = await cluster_workers(client)
        pset, stats = await build_set(
            client,
            params,
            self.dataset,
            partitioner,
            workers,
            previous=previous,
            cause="load" if previous is None else "config",
            generation=self._generation,
        )
        self._install(pset, stats)
        self._monitor = asyncio.ensure_future(self._watch())

    def _install(self, pset: PartitionSet, stats: MoveStats) -> None:
        """Put ``pset`` in force and account what building it moved."""
        old = self.current
        self.current = pset
        self.context.shared[CURRENT] = pset
        self._generation += 1
        m = self.metrics
        m.repartitions.labels(stats.cause).inc()
        m.keys.inc(stats.keys)
        m.keys_moved.inc(stats.keys_moved)
        m.rows_moved.inc(stats.rows_moved)
        m.moved.labels("repartition").inc(stats.bytes_moved)
        self._publish_layout()
        self.moves.append(stats.as_dict())
        log.info(
            "router: %s layout of %d partitions in %.2f s", stats.cause, len(pset), stats.seconds
        )
        if old is not None:
            self._retire(old, keep=pset.db_names())

    def _publish_layout(self) -> None:
        pset = self.current
        if pset is not None:
            self.metrics.layout(
                [(p.id, p.rows, p.bytes, len(p.copies)) for p in pset.partitions.values()]
            )

    def _retire(self, old: PartitionSet, keep: set[str]) -> None:
        async def when_drained() -> None:
            deadline = time.monotonic() + 60.0
            while old.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await old.release(self.context.client(), keep)

        task = asyncio.ensure_future(when_drained())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """Stop watching; release the layout once its requests are done."""
        self._closed = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(BaseException):
                await self._monitor
        if self.current is not None:
            pset, self.current = self.current, None
            deadline = time.monotonic() + 30.0
            while pset.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await pset.release(self.context.client())
        if self._retiring:
            await asyncio.wait(set(self._retiring), timeout=10.0)

    def layout(self) -> dict[str, Any]:
        """The layout in force and the moves so far (``GET /admin/data``)."""
        pset = self.current
        return {
            "dataset": self.dataset.describe() if self.dataset is not None else None,
            "engine": self.params.engine,
            "partitioner": self.params.partitioner,
            "placement": self.params.placement,
            "divisions": self.params.divisions,
            "key": self.params.key,
            "partitions": pset.describe() if pset is not None else [],
            "moves": list(self.moves),
        }

    # -- requests ----------------------------------------------------------------------------

    async def __call__(self, request: Request, next: Next) -> Response:
        """A ``/data`` query fans out over its partitions; anything else passes on."""
        query: Query | None = request.params.get("query")
        if query is None:
            return await next(request)
        pset = self.current
        if pset is None:
            raise NotReady("the router has no partitions loaded yet")
        pset.in_flight += 1
        try:
            return await self._serve(pset, request, query, next)
        finally:
            pset.in_flight -= 1

    async def _serve(
        self, pset: PartitionSet, request: Request, query: Query, next: Next
    ) -> Response:
        explain = bool(request.params.get("explain"))
        if isinstance(query, Insert):
            if pset.engine != "sqlite":
                return error(
                    409,
                    "the memory engine is read-only: writes need router.engine = 'sqlite'",
                )
            parts = pset.insert_targets(query)
            plan: list[tuple[int, Query, Any]] = [
                (p, q, copy) for p, q in parts.items() for copy in pset.partitions[p].copies
            ]
            pruned = "partitioner: each row to its key's partition, every copy"
        else:
            ids, pruned = pset.targets(query)
            plan = [(p, query, pset.partitions[p].reader()) for p in ids]
        pinned = self.params.placement == "pinned"
        subs = []
        for partition, part_query, copy in plan:
            if pset.engine == "sqlite":
                work: Any = (sqlite_db.run_db_query, (copy.db, part_query, explain))
            else:
                customers = pset.customers.get(copy.worker) if query_name(query) == "join" else None
                work = (
                    run_frame_query,
                    (copy.frame, part_query, pset.sorted_by, customers, explain),
                )
            subs.append(
                request.replace(
                    work=work,
                    workers=(copy.worker,) if pinned else (),
                    params={**request.params, "partition": partition},
                )
            )
        responses = await asyncio.gather(*(next(sub) for sub in subs))
        for (partition, _, _), response in zip(plan, responses, strict=True):
            if not response.ok:
                detail = (
                    (response.body or {}).get("detail", "")
                    if isinstance(response.body, dict)
                    else ""
                )
                return error(response.status, f"partition {partition}: {detail}", response.headers)
        results: list[PartResult] = [r.value for r in responses]
        workers: dict[str, None] = {}
        touched: dict[int, None] = {}
        scanned = 0
        for (partition, _, _), response, result in zip(plan, responses, results, strict=True):
            worker = response.headers.get("X-Worker", "")
            workers[worker] = None
            touched[partition] = None
            scanned += result.rows_scanned
            self.metrics.task(partition, worker, result.seconds, result.rows_scanned)
            self._window[partition] += 1
        if isinstance(query, Insert):
            for partition, part_query in pset.insert_targets(query).items():
                pset.written(partition, part_query)
        ids = list(touched)
        value: dict[str, Any] = {
            "query": query_name(query),
            "result": merge(query, [r.value for r in results]),
            "partitions": ids,
            "rows_scanned": scanned,
            "pruned_by": pruned,
            "engine": pset.engine,
        }
        if explain:
            value["plan"] = {str(p): r.plan for (p, _, _), r in zip(plan, results, strict=True)}
            value["uses_index"] = bool(results) and all(r.uses_index for r in results)
            value["full_scan"] = any(r.full_scan for r in results)
        headers = {
            "X-Partition": ",".join(str(p) for p in ids),
            "X-Rows-Scanned": str(scanned),
            "X-Worker": ",".join(w for w in workers if w),
        }
        return Response(200, value=value, headers=headers)

    # -- watching ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Every second: bytes Dask moved, where partitions are; every ``hot.check_s``: hot ones."""
        last_check = time.monotonic()
        while not self._closed:
            await asyncio.sleep(MONITOR_S)
            try:
                await self._account_transfers()
                await self._follow_data()
                hot = self.params.hot
                if hot.mode != "off" and time.monotonic() - last_check >= hot.check_s:
                    last_check = time.monotonic()
                    await self._check_hot()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watcher never takes the service down
                log.warning("router watcher: %r", exc, exc_info=True)

    async def _account_transfers(self) -> None:
        pset = self.current
        client = self.context.client()
        if pset is None or client is None:
            return
        logs = await asyncio.wait_for(client.run(tasks.transfers_since, dict(self._cursors)), 10.0)
        owner = pset.partition_of_keys()
        for worker, entries in logs.items():
            for stop, _, keys in entries:
                self._cursors[worker] = max(self._cursors.get(worker, 0.0), stop)
                for key, size in keys.items():
                    self.metrics.worker_bytes.labels(worker).inc(size)
                    partition = owner.get(key)
                    if partition is not None:
                        self.metrics.bytes_moved.labels(str(partition)).inc(size)
                        self.metrics.moved.labels("query").inc(size)

    async def _follow_data(self) -> None:
        """Pinned requests follow a partition that Dask moved (its worker went away)."""
        pset = self.current
        client = self.context.client()
        if pset is None or client is None:
            return
        futures = [c.frame for p in pset.partitions.values() for c in p.copies]
        where = await asyncio.wait_for(client.who_has(futures), 10.0)
        for part in pset.partitions.values():
            for copy in part.copies:
                holders = list(where.get(copy.frame.key, ()))
                if holders and copy.worker not in holders:
                    copy.worker = holders[0]

    async def _check_hot(self) -> None:
        pset = self.current
        window, self._window = self._window, Counter()
        hot = self.params.hot
        if pset is None or self._actions >= hot.max_actions:
            return
        total = sum(window.values())
        if total < hot.min_requests:
            return
        loads = {p: window.get(p, 0) / max(len(pset.partitions[p].copies), 1) for p in pset.ids}
        mean = sum(loads.values()) / len(loads)
        partition = max(loads, key=lambda p: loads[p])
        if mean <= 0 or loads[partition] / mean <= hot.threshold:
            return
        if hot.mode == "replicate" and partition in pset.replicated:
            return
        self._actions += 1
        client = self._client()
        workers = await cluster_workers(client)
        if hot.mode == "replicate":
            started = time.perf_counter()
            added = await add_replicas(client, pset, partition, workers, hot.ways)
            part = pset.partitions[partition]
            stats = MoveStats("replicate", len(pset), len(pset), partition=partition)
            stats.bytes_moved = part.bytes * added
            stats.seconds = time.perf_counter() - started
            m = self.metrics
            m.repartitions.labels("replicate").inc()
            m.moved.labels("repartition").inc(stats.bytes_moved)
            self.moves.append(stats.as_dict())
            self._publish_layout()
            return
        partitioner = SplitHot(pset.partitioner, {partition: hot.ways})
        assert self.dataset is not None
        new, stats = await build_set(
            client,
            self.params,
            self.dataset,
            partitioner,
            workers,
            previous=pset,
            only=[partition],
            cause="split",
            generation=self._generation,
        )
        new.replicated = set(pset.replicated)
        stats.partition = partition
        self._install(new, stats)
