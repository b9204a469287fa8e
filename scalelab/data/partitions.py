"""The partitions of the dataset on the cluster: where each lives, what it holds, how to build them.

A :class:`PartitionSet` is one layout of the data: its partitioner, and for
each partition its copies (a Dask future of the pandas frame on a worker, and
with the SQLite engine the database built from it there), its rows and bytes,
and its zone map (each numeric column's min and max). The router plans a
query against it (:meth:`PartitionSet.targets`: which partitions, and what
pruned the others) and sends each partition's part to a copy's worker.

:func:`build_set` lays a new set out: from the dataset's files, or from the
partitions of the set before it (a repartitioning: only rows whose worker
changes cross the network, and the keys, rows and bytes that moved are
counted). The set before keeps serving meanwhile; it is released once the
requests that started on it are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from scalelab.data import sqlite_db, tasks
from scalelab.data.config import RouterConfig
from scalelab.data.layout import DatasetInfo, read_customers, read_orders_file
from scalelab.data.partitioners import Partitioner, check_assignment, shipped
from scalelab.data.queries import GroupBy, Insert, Join, Lookup, Query, Range, key_counts

if TYPE_CHECKING:
    from distributed import Client, Future

_names = itertools.count()


@dataclass
class Copy:
    """One copy of a partition: its frame's future, its worker, and its database (SQLite)."""

    frame: Future
    worker: str
    db: Future | None = None
    db_name: str = ""


@dataclass
class Partition:
    """One partition: its copies (the first is the primary), size and zone map."""

    id: int
    copies: list[Copy]
    rows: int
    bytes: int
    keys: int
    low: dict[str, float]
    high: dict[str, float]
    turn: int = 0

    def reader(self) -> Copy:
        """The copy the next read goes to (round robin over the copies)."""
        self.turn += 1
        return self.copies[self.turn % len(self.copies)]

    def overlaps(self, column: str, low: float, high: float) -> bool:
        """Whether the zone map lets the partition hold ``low <= column <= high``."""
        if column not in self.low:
            return False  # an empty partition
        return self.low[column] <= high and self.high[column] >= low

    def widen(self, column: str, value: float) -> None:
        """Let the zone map cover ``value`` (after a write)."""
        if column in self.low:
            self.low[column] = min(self.low[column], value)
            self.high[column] = max(self.high[column], value)
        else:
            self.low[column] = self.high[column] = value


@dataclass
class MoveStats:
    """What one (re)partitioning moved."""

    cause: str
    partitions_before: int
    partitions_after: int
    keys: int = 0
    keys_moved: int = 0
    rows: int = 0
    rows_moved: int = 0
    bytes_moved: int = 0
    seconds: float = 0.0
    partition: int | None = None
    """The partition split or replicated (None for a whole layout)."""
    at: float = field(default_factory=time.time)

    @property
    def moved_share(self) -> float:
        """Keys moved over keys."""
        return self.keys_moved / self.keys if self.keys else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, with the share of keys moved."""
        return {**asdict(self), "moved_share": self.moved_share}


class PartitionSet:
    """One layout of the dataset on the cluster, and the plan of a query against it."""

    def __init__(
        self,
        config: RouterConfig,
        dataset: DatasetInfo,
        partitioner: Partitioner,
        partitions: list[Partition],
        customers: dict[str, Future],
        generation: int,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.partitioner = partitioner
        self.partitions = {p.id: p for p in partitions}
        self.customers = customers
        self.generation = generation
        self.key = config.key
        self.engine = config.engine
        self.divisions = config.divisions
        self.sorted_by = config.key if config.divisions else None
        self.in_flight = 0
        self.released = False
        self.replicated: set[int] = set()

    def __len__(self) -> int:
        return len(self.partitions)

    @property
    def ids(self) -> list[int]:
        """Partition numbers, ascending."""
        return sorted(self.partitions)

    def _zone(self, column: str, low: float, high: float) -> list[int]:
        return [p for p in self.ids if self.partitions[p].overlaps(column, low, high)]

    def _by_key(self, low: int, high: int) -> list[int] | None:
        if low == high:
            return [self.partitioner.partition(low)]
        return self.partitioner.partitions_for_range(low, high)

    def targets(self, query: Query) -> tuple[list[int], str]:
        """The partitions ``query`` must visit, and what pruned the others."""
        everything = self.ids
        if not self.divisions:
            return everything, "none: divisions unknown, every partition is scanned"
        column, low, high = _filter_of(query)
        if column is None:
            return everything, "none: the query reads every partition"
        zone = self._zone(column, low, high)
        if column == self.key:
            routed = self._by_key(int(low), int(high))
            if routed is not None:
                return sorted(set(routed) & set(everything)), "partitioner"
        return zone, "zone maps (each partition's min and max)"

    def insert_targets(self, query: Insert) -> dict[int, Insert]:
        """The rows of an insert, grouped by the partition each belongs to."""
        position = ("order_id", "customer_id").index(self.key)
        keys = np.asarray([row[position] for row in query.rows], dtype=np.int64)
        parts = check_assignment(
            self.partitioner.partition_many(keys), max(self.ids) + 1, self.config.partitioner
        )
        grouped: dict[int, list[tuple[Any, ...]]] = {}
        for row, partition in zip(query.rows, parts.tolist(), strict=True):
            grouped.setdefault(partition, []).append(row)
        return {p: Insert(tuple(rows)) for p, rows in grouped.items()}

    def written(self, partition: int, query: Insert) -> None:
        """Account rows written to ``partition``: its size and zone map."""
        part = self.partitions[partition]
        part.rows += len(query.rows)
        for row in query.rows:
            for i, column in ((0, "order_id"), (1, "customer_id"), (3, "ts"), (4, "amount")):
                part.widen(column, row[i])

    def futures(self) -> list[Future]:
        """Every future the set holds (frames and databases)."""
        out: list[Future] = []
        for part in self.partitions.values():
            for copy in part.copies:
                out.append(copy.frame)
                if copy.db is not None:
                    out.append(copy.db)
        return out

    def partition_of_keys(self) -> dict[str, int]:
        """The partition each Dask key of the set belongs to."""
        return {
            str(f.key): part.id
            for part in self.partitions.values()
            for copy in part.copies
            for f in (copy.frame, copy.db)
            if f is not None
        }

    def db_names(self) -> set[str]:
        """Names of the set's databases."""
        return {c.db_name for p in self.partitions.values() for c in p.copies if c.db_name}

    def describe(self) -> list[dict[str, Any]]:
        """One entry per partition: workers, rows, bytes, keys, zone map."""
        return [
            {
                "partition": p.id,
                "workers": [c.worker for c in p.copies],
                "rows": p.rows,
                "bytes": p.bytes,
                "keys": p.keys,
                "min": p.low,
                "max": p.high,
            }
            for p in (self.partitions[i] for i in self.ids)
        ]

    async def release(self, client: Client | None, keep: set[str] | None = None) -> None:
        """Drop the set's futures (Dask frees what no other set holds) and its databases."""
        if self.released:
            return
        self.released = True
        names = sorted(self.db_names() - (keep or set()))
        self.partitions = {}
        self.customers = {}
        if names and client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.run(sqlite_db.drop_databases, names), 10.0)


def _filter_of(query: Query) -> tuple[str | None, float, float]:
    """The column a query filters on and the range it keeps (None: no filter)."""
    if isinstance(query, Lookup):
        return query.column, query.value, query.value
    if isinstance(query, Range):
        return query.column, query.low, query.high
    if isinstance(query, Join) and query.customer is not None:
        return "customer_id", query.customer, query.customer
    if isinstance(query, GroupBy | Join) and (
        query.ts_low is not None or query.ts_high is not None
    ):
        low = query.ts_low if query.ts_low is not None else -(2**62)
        high = query.ts_high if query.ts_high is not None else 2**62
        return "ts", low, high
    return None, 0, 0


async def cluster_workers(client: Client) -> list[str]:
    """The workers the scheduler knows now, sorted."""
    scheduler: Any = client.scheduler
    info = await asyncio.wait_for(scheduler.identity(n_workers=-1), 10.0)
    return sorted(info.get("workers") or {})


def placement(partitions: list[int], workers: list[str]) -> dict[int, str]:
    """Partition ``p`` on worker ``p mod W`` (workers sorted by address)."""
    return {p: workers[p % len(workers)] for p in partitions}


async def build_set(
    client: Client,
    config: RouterConfig,
    dataset: DatasetInfo,
    partitioner: Partitioner,
    workers: list[str],
    previous: PartitionSet | None = None,
    only: list[int] | None = None,
    cause: str = "load",
    generation: int = 0,
) -> tuple[PartitionSet, MoveStats]:
    """Lay the data out by ``partitioner`` on ``workers``; from ``previous`` when given.

    With ``only``, just those partitions of ``previous`` are redistributed (a
    split of a hot partition): the others are kept as they are, copies and all.
    """
    if not workers:
        raise RuntimeError("the cluster has no workers to hold partitions")
    started = time.perf_counter()
    key = config.key
    path = str(dataset.path)
    before = len(previous) if previous is not None else 0
    kept: list[Partition] = []
    sources: list[tuple[Any, str, int]] = []
    if previous is not None:
        chosen = only if only is not None else previous.ids
        kept = [p for i, p in previous.partitions.items() if i not in chosen]
        for i in chosen:
            copy = previous.partitions[i].copies[0]
            source = copy.frame
            if copy.db is not None:
                source = client.submit(
                    sqlite_db.export_database, copy.db, workers=[copy.worker], pure=False
                )
            sources.append((source, copy.worker, i))
        customers = dict(previous.customers)
    else:
        for i, relative in enumerate(dataset.orders_files()):
            worker = workers[i % len(workers)]
            future = client.submit(
                read_orders_file, path, relative, workers=[worker], pure=False,
                allow_other_workers=True,
            )  # fmt: skip
            sources.append((future, worker, -1))
        customers = {}
    for worker in workers:
        if worker not in customers:
            customers[worker] = client.submit(
                read_customers, path, workers=[worker], pure=False, allow_other_workers=True
            )
    if only is None:
        counted = await client.gather(
            [client.submit(key_counts, s, key, workers=[w], pure=False) for s, w, _ in sources]
        )
        keys = np.concatenate([k for k, _ in counted]) if counted else np.zeros(0, np.int64)
        rows = np.concatenate([r for _, r in counted]) if counted else np.zeros(0, np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        partitioner.fit(unique, np.bincount(inverse, weights=rows).astype(np.int64))
    n = partitioner.partitions
    where = {p.id: p.copies[0].worker for p in kept}
    where.update({p: w for p, w in placement(list(range(n)), workers).items() if p not in where})
    destinations = [where[p] for p in range(n)]
    name = config.partitioner
    splits = [
        client.submit(
            tasks.split_frame,
            s,
            shipped(partitioner),
            key,
            destinations,
            old,
            w,
            name,
            workers=[w],
            pure=False,
            allow_other_workers=True,
        )  # fmt: skip
        for s, w, old in sources
    ]
    infos = await client.gather(
        [
            client.submit(tasks.pick_info, sp, workers=[w], pure=False)
            for sp, (_, w, _) in zip(splits, sources, strict=True)
        ]
    )
    new_ids = set().union(*(info["rows_to"] for info in infos)) if infos else set()
    if only is None:
        new_ids |= set(range(n))
    picks: dict[tuple[int, str], Any] = {}
    for i, (split, (_, w, _)) in enumerate(zip(splits, sources, strict=True)):
        for target in {destinations[p] for p in infos[i]["rows_to"]}:
            picks[(i, target)] = client.submit(
                tasks.pick_pieces, split, target, workers=[w], pure=False
            )
    sort_key = key if config.divisions else None
    frames: dict[int, Any] = {}
    for p in sorted(new_ids):
        inputs = [
            picks[(i, destinations[p])]
            for i in range(len(sources))
            if (i, destinations[p]) in picks
        ]
        frames[p] = client.submit(
            tasks.assemble, inputs, p, sort_key, workers=[destinations[p]], pure=False,
            allow_other_workers=True,
        )  # fmt: skip
    metas = await client.gather(
        [
            client.submit(tasks.frame_meta, frames[p], key, workers=[destinations[p]], pure=False)
            for p in sorted(frames)
        ]
    )
    built: list[Partition] = []
    for p, meta in zip(sorted(frames), metas, strict=True):
        copy = Copy(frames[p], destinations[p])
        built.append(
            Partition(
                p, [copy], meta["rows"], meta["bytes"], meta["keys"], meta["low"], meta["high"]
            )
        )
    if config.engine == "sqlite":
        await build_databases(client, config, built, customers)
    del picks, splits, sources  # the shuffle's intermediate data is released with them
    result = PartitionSet(config, dataset, partitioner, [*kept, *built], customers, generation)
    stats = MoveStats(cause, before, len(result))
    if previous is not None:
        stats.keys = sum(int(i["keys"]) for i in infos)
        stats.keys_moved = sum(int(i["keys_moved"]) for i in infos)
        stats.rows = sum(int(i["rows"]) for i in infos)
        stats.rows_moved = sum(int(i["rows_moved"]) for i in infos)
        stats.bytes_moved = sum(int(i["bytes_moved"]) for i in infos)
    stats.seconds = time.perf_counter() - started
    return result, stats


def _ddl(config: RouterConfig) -> list[str]:
    return sqlite_db.index_statements(config.index, config.index_ddl)


async def build_databases(
    client: Client, config: RouterConfig, partitions: list[Partition], customers: dict[str, Any]
) -> None:
    """Give each copy of ``partitions`` a database on its worker (the SQLite engine)."""
    ddl = _ddl(config)
    pending = []
    for part in partitions:
        for copy in part.copies:
            if copy.db is not None:
                continue
            copy.db_name = f"p{part.id}-{next(_names)}-{time.monotonic_ns()}"
            copy.db = client.submit(
                sqlite_db.build_database, copy.frame, customers[copy.worker], copy.db_name, ddl,
                workers=[copy.worker], pure=False, allow_other_workers=True,
            )  # fmt: skip
            pending.append(copy.db)
    await client.gather(pending)


async def add_replicas(
    client: Client, pset: PartitionSet, partition: int, workers: list[str], ways: int
) -> int:
    """Copy ``partition`` onto up to ``ways - 1`` more workers; return the copies added."""
    part = pset.partitions[partition]
    have = {c.worker for c in part.copies}
    others = [w for w in workers if w not in have][: max(ways - len(part.copies), 0)]
    added = [
        Copy(client.submit(tasks.copy_frame, part.copies[0].frame, workers=[w], pure=False), w)
        for w in others
    ]
    for worker in others:
        if worker not in pset.customers:
            pset.customers[worker] = client.submit(
                read_customers, str(pset.dataset.path), workers=[worker], pure=False
            )
    await client.gather([c.frame for c in added])
    if pset.engine == "sqlite":
        staged = Partition(part.id, added, part.rows, part.bytes, part.keys, part.low, part.high)
        await build_databases(client, pset.config, [staged], pset.customers)
    part.copies.extend(added)
    pset.replicated.add(partition)
    return len(added)
