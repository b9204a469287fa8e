"""The router's metrics: load per partition and per worker, and what repartitioning moved.

Registered once in the service's own registry (so ``GET /metrics`` shows them
and a run's scraper records them in ``metrics.parquet``), and kept across
rebuilds of the router:

- ``scalelab_partition_requests_total{partition}``: partition tasks (a query
  touching three partitions counts one for each);
- ``scalelab_partition_task_seconds_total{partition}``: time inside those tasks;
- ``scalelab_partition_rows_scanned_total{partition}``: rows they scanned;
- ``scalelab_partition_bytes_moved_total{partition}``: bytes of the partition
  that Dask moved between workers to run a task elsewhere;
- ``scalelab_partition_rows{partition}``, ``scalelab_partition_bytes{partition}``,
  ``scalelab_partition_copies{partition}``: the layout in force;
- ``scalelab_worker_requests_total{worker}``, ``scalelab_worker_task_seconds_total{worker}``,
  ``scalelab_worker_bytes_moved_total{worker}``: the same per worker (bytes it received);
- ``scalelab_router_partitions``: partitions in force;
- ``scalelab_router_repartitions_total{cause}``: layouts built (``load``,
  ``config``, ``split``, ``replicate``);
- ``scalelab_router_keys_total``, ``scalelab_router_keys_moved_total``,
  ``scalelab_router_rows_moved_total``, ``scalelab_router_bytes_moved_total{cause}``:
  keys a repartitioning looked at and moved to another partition, rows moved,
  and bytes that crossed between workers (``repartition``, or ``query`` for
  data Dask moved to run a task).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class PartitionMetrics:
    """The router's series in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "scalelab_partition_requests", "Partition tasks run.", ["partition"], registry=r
        )
        self.task_seconds = Counter(
            "scalelab_partition_task_seconds",
            "Time inside a partition's tasks.",
            ["partition"],
            registry=r,
        )
        self.rows_scanned = Counter(
            "scalelab_partition_rows_scanned",
            "Rows a partition's tasks scanned.",
            ["partition"],
            registry=r,
        )
        self.bytes_moved = Counter(
            "scalelab_partition_bytes_moved",
            "Bytes of a partition Dask moved between workers.",
            ["partition"],
            registry=r,
        )
        self.rows = Gauge(
            "scalelab_partition_rows", "Rows a partition holds.", ["partition"], registry=r
        )
        self.bytes = Gauge(
            "scalelab_partition_bytes", "Bytes a partition takes.", ["partition"], registry=r
        )
        self.copies = Gauge(
            "scalelab_partition_copies", "Copies of a partition.", ["partition"], registry=r
        )
        self.worker_requests = Counter(
            "scalelab_worker_requests", "Partition tasks run by a worker.", ["worker"], registry=r
        )
        self.worker_seconds = Counter(
            "scalelab_worker_task_seconds",
            "Time inside partition tasks on a worker.",
            ["worker"],
            registry=r,
        )
        self.worker_bytes = Counter(
            "scalelab_worker_bytes_moved",
            "Bytes a worker received from other workers.",
            ["worker"],
            registry=r,
        )
        self.partitions = Gauge(
            "scalelab_router_partitions", "Partitions of the layout in force.", registry=r
        )
        self.repartitions = Counter(
            "scalelab_router_repartitions", "Layouts built, by cause.", ["cause"], registry=r
        )
        self.keys = Counter("scalelab_router_keys", "Keys repartitionings looked at.", registry=r)
        self.keys_moved = Counter(
            "scalelab_router_keys_moved", "Keys moved to another partition.", registry=r
        )
        self.rows_moved = Counter(
            "scalelab_router_rows_moved", "Rows moved to another partition.", registry=r
        )
        self.moved = Counter(
            "scalelab_router_bytes_moved",
            "Bytes that crossed between workers, by cause (repartition, query).",
            ["cause"],
            registry=r,
        )
        self._children: dict[tuple[str, str], object] = {}

    def task(self, partition: int, worker: str, seconds: float, rows: int) -> None:
        """Account one partition task."""
        p = str(partition)
        self.requests.labels(p).inc()
        self.task_seconds.labels(p).inc(seconds)
        self.rows_scanned.labels(p).inc(rows)
        self.worker_requests.labels(worker).inc()
        self.worker_seconds.labels(worker).inc(seconds)

    def layout(self, partitions: list[tuple[int, int, int, int]]) -> None:
        """The layout in force: ``(partition, rows, bytes, copies)`` each; old labels removed."""
        for gauge in (self.rows, self.bytes, self.copies):
            gauge.clear()
        for partition, rows, size, copies in partitions:
            p = str(partition)
            self.rows.labels(p).set(rows)
            self.bytes.labels(p).set(size)
            self.copies.labels(p).set(copies)
        self.partitions.set(len(partitions))
