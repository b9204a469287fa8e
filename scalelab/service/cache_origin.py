"""The origin behind the cache: keys with versions, changed by writes, so staleness is measurable.

Every key starts at version 0. ``PUT /kv/{key}`` makes a new version (the
version goes up by one and its write time is kept). A value served from a
cache carries the version it was computed at; comparing it with the current
version tells whether the read was stale, and the write times tell for how
long: :meth:`KeyStore.stale_ms` is the time since the version served was
superseded (0 for a fresh read). This is the "t-visibility" of probabilistically
bounded staleness, measured exactly because the service is the source of truth.
Durations are measured on the monotonic clock; write times are reported as
wall-clock (Unix) times.

The store lives in the service process: with a Redis tier shared by several
services, each keeps its own versions.

:class:`KeyCall` is how the cache computes one key for one request: through
the rest of the stack (so the layers after the cache and the executor do the
work), or, for Dask's own result reuse, as a Dask task with a deterministic key.
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
    from scalelab.service.request import Next, Request, Response

MAX_HISTORY = 256
"""Write times kept per key; older writes count as at least as old as the oldest kept."""


@dataclass(frozen=True, slots=True)
class Write:
    """A key's new version and when it was written (Unix seconds)."""

    key: str
    version: int
    written_at: float


class KeyStore:
    """Current version of every key, and when each recent version was written.

    ``clock`` is the monotonic clock durations are measured on; ``wall`` gives
    the Unix time reported with a write.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.wall = wall
        self.started_at = clock()
        self._wall_offset = wall() - self.started_at
        self._versions: dict[str, int] = {}
        self._writes: dict[str, deque[float]] = {}

    def version(self, key: str) -> int:
        """The key's current version (0 until it is first written)."""
        return self._versions.get(key, 0)

    def _written(self, key: str, version: int) -> float:
        """When ``version`` of ``key`` was written, on the monotonic clock."""
        if version <= 0:
            return self.started_at
        writes = self._writes.get(key)
        if not writes:
            return self.started_at
        current = self._versions.get(key, 0)
        index = len(writes) - 1 - (current - version)
        return writes[max(index, 0)]

    def written_at(self, key: str, version: int) -> float:
        """When ``version`` of ``key`` was written, as a Unix time (version 0: the start)."""
        return self._written(key, version) + self._wall_offset

    def write(self, key: str) -> Write:
        """Make a new version of ``key``; return it with its write time (Unix seconds)."""
        now = self.clock()
        version = self._versions.get(key, 0) + 1
        self._versions[key] = version
        writes = self._writes.get(key)
        if writes is None:
            writes = self._writes[key] = deque(maxlen=MAX_HISTORY)
        writes.append(now)
        return Write(key, version, now + self._wall_offset)

    def stale_ms(self, key: str, version: int, now: float | None = None) -> float:
        """How long ago ``version`` of ``key`` was superseded, in ms (0 when it is current).

        ``now`` is a reading of the store's (monotonic) clock.
        """
        if version >= self.version(key):
            return 0.0
        now = self.clock() if now is None else now
        return max(0.0, (now - self._written(key, version + 1)) * 1000.0)

    def __len__(self) -> int:
        return len(self._versions)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one computation of a key costs: CPU units and I/O milliseconds on a Dask worker."""

    units: int = 0
    io_ms: float = 0.0


def keyed_call(key: str, version: int, cost: Cost, fail: bool) -> tuple[Any, tuple[Any, ...]]:
    """The workload call computing ``key`` at ``version`` at ``cost`` (failing when ``fail``)."""
    return keyed_work, (key, version, cost.units, cost.io_ms, fail)


class OriginFailed(RuntimeError):
    """The rest of the stack answered a computation with an error (the response is kept)."""

    def __init__(self, response: Response) -> None:
        body = response.body if isinstance(response.body, dict) else {}
        super().__init__(str(body.get("detail") or f"HTTP {response.status}"))
        self.response = response


class KeyCall:
    """How the cache computes one key for one request, at the version the cache asks for.

    ``compute`` sends the request, with the keyed workload at that version as
    its work, through ``next`` (the rest of the stack); ``submit`` sends the
    same call to Dask as a task with a deterministic key (Dask's own reuse).
    ``fails`` draws whether the origin fails this computation
    (``origin.error_rate``).
    """

    def __init__(
        self,
        request: Request,
        next: Next,
        cost: Cost,
        fails: Callable[[], bool],
        client: Callable[[], Any],
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request = request
        self.next = next
        self.cost = cost
        self.fails = fails
        self.client = client
        self.wall = wall
        self.clock = clock

    async def compute(self, key: str, version: int) -> Entry:
        """Compute ``key`` at ``version`` through the rest of the stack."""
        work = keyed_call(key, version, self.cost, self.fails())
        response = await self.next(self.request.replace(work=work))
        if not response.ok:
            raise OriginFailed(response)
        worker = response.headers.get("X-Worker", "")
        return Entry(response.value, version, self.wall(), worker, self.clock())

    def submit(self, key: str, version: int) -> Any:
        """Submit ``key`` at ``version`` as a Dask task with a deterministic key; its future."""
        client = self.client()
        if client is None:
            raise RuntimeError("the service is not ready: no Dask client yet")
        fn, args = keyed_call(key, version, self.cost, self.fails())
        return client.submit(run_task, fn, args, key=dask_key(key, version), pure=True)


def origin_fails(settings: OriginConfig, rng: random.Random) -> bool:
    """Whether one computation fails, drawn with probability ``origin.error_rate``."""
    rate = settings.error_rate
    return rate > 0 and rng.random() < rate


def dask_key(key: str, version: int) -> str:
    """The Dask task key of ``key`` at ``version``: equal requests name the same task."""
    return f"scalelab-key-{key}-v{version}"
