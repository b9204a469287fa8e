"""The origin behind the cache: keys with versions, changed by writes, so staleness is measurable.

Every key starts at version 0. ``PUT /kv/{key}`` makes a new version (the
version goes up by one and its write time is kept). A value served from a
cache carries the version it was computed at; comparing it with the current
version tells whether the read was stale, and the write times tell for how
long: :meth:`KeyStore.stale_ms` is the time since the version served was
superseded (0 for a fresh read). This is the "t-visibility" of probabilistically
bounded staleness, measured exactly because the service is the source of truth.

The store lives in the service process: with a Redis tier shared by several
services, each keeps its own versions.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalelab.service.cache_tiers import Entry
from scalelab.service.workloads import keyed_work, run_task

if TYPE_CHECKING:
    from scalelab.config import OriginConfig
    from scalelab.service.executors import Executor

MAX_HISTORY = 256
"""Write times kept per key; older writes count as at least as old as the oldest kept."""


@dataclass(frozen=True, slots=True)
class Write:
    """A key's new version and when it was written (Unix seconds)."""

    key: str
    version: int
    written_at: float


class KeyStore:
    """Current version of every key, and when each recent version was written."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started_at = clock()
        self._versions: dict[str, int] = {}
        self._writes: dict[str, deque[float]] = {}

    def version(self, key: str) -> int:
        """The key's current version (0 until it is first written)."""
        return self._versions.get(key, 0)

    def written_at(self, key: str, version: int) -> float:
        """When ``version`` of ``key`` was written (version 0: when the service started)."""
        if version <= 0:
            return self.started_at
        writes = self._writes.get(key)
        if not writes:
            return self.started_at
        current = self._versions.get(key, 0)
        index = len(writes) - 1 - (current - version)
        return writes[max(index, 0)]

    def write(self, key: str) -> Write:
        """Make a new version of ``key``; return it with its write time."""
        now = self.clock()
        version = self._versions.get(key, 0) + 1
        self._versions[key] = version
        writes = self._writes.get(key)
        if writes is None:
            writes = self._writes[key] = deque(maxlen=MAX_HISTORY)
        writes.append(now)
        return Write(key, version, now)

    def stale_ms(self, key: str, version: int, now: float | None = None) -> float:
        """How long ago ``version`` of ``key`` was superseded, in ms (0 when it is current)."""
        if version >= self.version(key):
            return 0.0
        now = self.clock() if now is None else now
        return max(0.0, (now - self.written_at(key, version + 1)) * 1000.0)

    def __len__(self) -> int:
        return len(self._versions)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one computation of a key costs: CPU units and I/O milliseconds on a Dask worker."""

    units: int = 0
    io_ms: float = 0.0


class Origin:
    """Computes keys on the cluster, at their current version, through the service's executor.

    ``executor`` and ``client`` are read when a computation starts (they change
    when the configuration does); ``settings`` gives the ``origin`` section now
    in force, whose ``error_rate`` makes a share of computations fail.
    """

    def __init__(
        self,
        store: KeyStore,
        executor: Callable[[], Executor | None],
        client: Callable[[], Any],
        settings: Callable[[], OriginConfig],
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._executor = executor
        self._client = client
        self._settings = settings
        self._rng = rng or random.Random()
        self.clock = clock

    def cost(self, units: int | None = None, io_ms: float | None = None) -> Cost:
        """The cost of one computation: the request's, else the ``origin`` section's."""
        s = self._settings()
        return Cost(s.units if units is None else units, s.io_ms if io_ms is None else io_ms)

    def dask_client(self) -> Any:
        """The service's Dask client now (None before the cluster is up)."""
        return self._client()

    def _fails(self) -> bool:
        rate = self._settings().error_rate
        return rate > 0 and self._rng.random() < rate

    async def compute(self, key: str, cost: Cost) -> Entry:
        """Compute ``key`` at its current version on a Dask worker."""
        executor = self._executor()
        if executor is None:
            raise RuntimeError("the service is not ready: no executor yet")
        version = self.store.version(key)
        result = await executor.run(
            keyed_work, (key, version, cost.units, cost.io_ms, self._fails())
        )
        return Entry(result.value, version, self.clock(), result.worker)

    def submit(self, key: str, version: int, cost: Cost) -> Any:
        """Submit ``key`` at ``version`` as a Dask task with a deterministic key; its future."""
        client = self.dask_client()
        if client is None:
            raise RuntimeError("the service is not ready: no Dask client yet")
        return client.submit(
            run_task,
            keyed_work,
            (key, version, cost.units, cost.io_ms, self._fails()),
            key=dask_key(key, version),
            pure=True,
        )


def dask_key(key: str, version: int) -> str:
    """The Dask task key of ``key`` at ``version``: equal requests name the same task."""
    return f"scalelab-key-{key}-v{version}"
