"""The cache stage of the request path: tiers, coalescing, stale-while-revalidate, stale-on-error.

``GET /task/key/{key}`` asks the stage for a key; the stage answers from a
cache or computes the key at the origin (a :class:`~.cache_origin.KeyCall`:
through the rest of the stack), and says how it answered (``X-Cache``):

- ``hit``: a fresh entry (younger than ``cache.ttl_s``, or any age when
  ``ttl_s = 0``) from a tier;
- ``stale``: an entry past ``ttl_s`` but within ``stale_while_revalidate_s``
  of it, served at once while one background computation refreshes it; or,
  with ``stale_on_error``, an entry of any age served because computing a
  fresh one failed;
- ``miss``: this request computed the key;
- ``coalesced``: this request waited for a computation of the key that was
  already in flight (``cache.coalesce``), and got its result.

Writes and reads. With ``cache.invalidate_on_write``, a read that starts after
a write has been answered never gets an older version as a ``hit``:
computations are coalesced per (key, version), an entry older than the key's
current version is not served fresh, and a computation that finishes after a
newer write does not store its older value. Only the configured stale answers
(stale-while-revalidate, stale-on-error) may then serve an older version, and
they say ``stale``. Without ``invalidate_on_write`` the cache does not know
about writes (as a CDN or a client-side cache would not): it serves what it
holds until ``ttl_s`` passes, and ``X-Stale-Ms`` measures how stale that was.

Ages are measured on the monotonic clock. Two strategies: :class:`ServiceCache`
keeps values in the service (in-process and/or Redis tiers);
:class:`DaskReuse` keeps *futures* of Dask tasks whose keys are derived from the
workload key (``scalelab-key-<key>-v<version>``), so Dask itself reuses a result
it still holds and merges equal tasks in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from scalelab.config import CacheConfig
from scalelab.service.cache_origin import KeyStore, dask_key
from scalelab.service.cache_policies import make_cache
from scalelab.service.cache_tiers import Entry, LocalTier, RedisTier, Reserved, Tiers
from scalelab.service.coalescing import Coalescer
from scalelab.service.metrics import ServiceMetrics

HIT, MISS, STALE, COALESCED = "hit", "miss", "stale", "coalesced"
"""The values of ``X-Cache``."""


class Origin(Protocol):
    """How the stage computes a key for the request asking (see :class:`~.cache_origin.KeyCall`)."""

    async def compute(self, key: str, version: int) -> Entry:
        """The key's value at ``version``."""
        ...

    def submit(self, key: str, version: int) -> Any:
        """The key at ``version`` as a Dask task with a deterministic key (its future)."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A key's entry, how the stage answered (``hit``...), and the tier it came from."""

    entry: Entry
    status: str
    tier: str = ""


class CacheStage:
    """What the request path needs of a cache stage; the two strategies implement it."""

    enabled = False

    async def fetch(self, key: str, origin: Origin) -> Answer:
        """The key's value: from a cache, or computed by ``origin``."""
        raise NotImplementedError

    async def invalidate(self, key: str) -> bool:
        """Remove ``key`` from every tier; True when one held it."""
        raise NotImplementedError

    async def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        raise NotImplementedError

    def size(self) -> int:
        """Entries held in the service process now (keys being computed included)."""
        raise NotImplementedError

    async def redis_size(self) -> int | None:
        """Keys in the Redis tier (None without one, or while it is away)."""
        return None

    async def close(self) -> None:
        """Stop background work and close connections."""


class ServiceCache(CacheStage):
    """Values cached in the service: in-process and/or Redis tiers in front of the origin."""

    def __init__(
        self,
        config: CacheConfig,
        store: KeyStore,
        metrics: ServiceMetrics,
        *,
        timer: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.timer = timer
        self.enabled = config.policy != "none"
        self.ttl_s = config.ttl_s
        self.swr_s = config.stale_while_revalidate_s if config.ttl_s > 0 else 0.0
        self.versioned = config.invalidate_on_write
        lifetime = self.ttl_s + self.swr_s
        evicted = metrics.cache_evictions.labels("capacity")
        expired = metrics.cache_evictions.labels("expired")
        local = make_cache(
            config.policy,
            config.size,
            lifetime_s=lifetime,
            on_evict=lambda _k, _v: evicted.inc(),
            on_expire=expired.inc,
            timer=timer,
        )
        redis = None
        if self.enabled and config.tier in ("redis", "both"):
            redis = RedisTier(
                config.redis_url,
                metrics,
                timeout_s=config.redis_timeout_ms / 1000.0,
                retry_s=config.redis_retry_s,
                lifetime_s=lifetime,
                timer=timer,
                clock=wall,
            )
        self.tiers = Tiers(config.tier, LocalTier(local), redis, metrics)
        self.inflight: Coalescer[Entry] = Coalescer()
        self._hits = {t: metrics.cache_hits.labels(t) for t in ("local", "redis")}
        self._stale_revalidate = metrics.cache_stale.labels("revalidate")
        self._stale_error = metrics.cache_stale.labels("error")

    def age_s(self, entry: Entry) -> float:
        """Seconds since ``entry`` was computed (monotonic)."""
        return self.timer() - entry.born

    async def fetch(self, key: str, origin: Origin) -> Answer:
        """Answer from a tier when fresh (or stale within the window), else compute."""
        version = self.store.version(key)
        if not self.enabled:
            self.metrics.cache_misses.inc()
            return Answer(await self._compute(key, version, origin), MISS)
        found, tier = await self.tiers.get(key)
        entry = found if isinstance(found, Entry) else None
        if entry is not None:
            outdated = self.versioned and entry.version < version
            age = self.age_s(entry)
            if not outdated and (self.ttl_s <= 0 or age < self.ttl_s):
                self._hits[tier].inc()
                return Answer(entry, HIT, tier)
            in_window = self.ttl_s > 0 and age < self.ttl_s + self.swr_s
            if in_window or (outdated and self.swr_s > 0):
                self.refresh(key, version, origin)
                self._stale_revalidate.inc()
                return Answer(entry, STALE, tier)
        try:
            if self.config.coalesce:
                task, leader = self.inflight.start(
                    (key, version), lambda: self._compute_and_store(key, version, origin)
                )
                fresh = await asyncio.shield(task)
                status = MISS if leader else COALESCED
            else:
                fresh = await self._compute_and_store(key, version, origin)
                status = MISS
        except Exception:
            if entry is not None and self.config.stale_on_error:
                self._stale_error.inc()
                return Answer(entry, STALE, tier)
            raise
        if status == MISS:
            self.metrics.cache_misses.inc()
        else:
            self.metrics.cache_coalesced.inc()
        return Answer(fresh, status)

    def refresh(self, key: str, version: int, origin: Origin) -> bool:
        """Start one background computation of ``key`` unless one is in flight; True if started."""
        _, started = self.inflight.start(
            (key, version), lambda: self._compute_and_store(key, version, origin)
        )
        if started:
            self.metrics.cache_refreshes.inc()
        return started

    async def _compute(self, key: str, version: int, origin: Origin) -> Entry:
        self.metrics.origin_calls.inc()
        try:
            return await origin.compute(key, version)
        except Exception:
            self.metrics.origin_errors.inc()
            raise

    async def _compute_and_store(self, key: str, version: int, origin: Origin) -> Entry:
        slot: Reserved | None = self.tiers.reserve(key, version)
        try:
            entry = await self._compute(key, version, origin)
        except BaseException:
            self.tiers.release(key, slot)
            raise
        if self.versioned and entry.version < self.store.version(key):
            self.tiers.release(key, slot)  # a newer write landed meanwhile: keep no old value
        else:
            await self.tiers.set(key, entry, slot)
        return entry

    async def invalidate(self, key: str) -> bool:
        """Remove ``key`` from every tier (a reservation too: its value will not be stored)."""
        found = await self.tiers.delete(key)
        if found:
            self.metrics.cache_invalidations.inc()
        return found

    async def clear(self) -> int:
        """Remove every entry from every tier."""
        removed = await self.tiers.clear()
        self.metrics.cache_invalidations.inc(removed)
        return removed

    def size(self) -> int:
        """Keys in the in-process tier, those being computed included."""
        return self.tiers.local.size() if self.enabled else 0

    async def redis_size(self) -> int | None:
        """Keys in the Redis database, when there is a Redis tier that answers."""
        return None if self.tiers.redis is None else await self.tiers.redis.size()

    async def close(self) -> None:
        """Cancel refreshes in flight and close Redis."""
        await self.inflight.cancel_all()
        await self.tiers.close()


class DaskReuse(CacheStage):
    """Dask's own result reuse: hold futures of deterministic task keys; Dask keeps their results.

    ``policy`` and ``size`` choose which futures are held (``none``: none
    beyond those in flight, so only equal requests in flight are merged). A
    held future of the key's current version answers ``hit`` when done and
    ``coalesced`` while running, and so does a future of the same task that
    another request holds; the value still travels from the worker that holds
    it. TTLs, tiers and stale answers do not apply.
    """

    enabled = True

    def __init__(
        self,
        config: CacheConfig,
        store: KeyStore,
        metrics: ServiceMetrics,
        client: Callable[[], Any],
        *,
        timer: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.client = client
        self.timer = timer
        self.wall = wall
        evicted = metrics.cache_evictions.labels("capacity")
        self.held = make_cache(
            config.policy if config.policy not in ("ttl", "tlru") else "lru",
            config.size,
            on_evict=lambda _k, _v: evicted.inc(),
        )
        self._hit = metrics.cache_hits.labels("dask")

    def _status_of_known(self, key: str, version: int) -> str | None:
        """``hit``/``coalesced`` when the client already holds this task's future, else None."""
        client = self.client()
        state = getattr(client, "futures", {}).get(dask_key(key, version))
        if state is None:
            return None
        return HIT if getattr(state, "status", "pending") == "finished" else COALESCED

    async def fetch(self, key: str, origin: Origin) -> Answer:
        """Reuse the held future of the key's current version, or submit its task."""
        version = self.store.version(key)
        held = self.held
        future: Any = None
        if held is not None:
            found = held.get(key)
            if found is not None and found[0] == version:
                future = found[1]
        if future is not None:
            status = HIT if future.done() else COALESCED
        else:
            known = self._status_of_known(key, version)
            future = origin.submit(key, version)
            if known is not None:
                status = known
            else:
                status = MISS
                self.metrics.origin_calls.inc()
            if held is not None:
                held[key] = (version, future)
        try:
            worker, value = await future
        except Exception:
            if status == MISS:
                self.metrics.origin_errors.inc()
            if held is not None:
                with contextlib.suppress(KeyError):
                    if held.get(key, (None, None))[1] is future:
                        del held[key]
            raise
        if status == HIT:
            self._hit.inc()
        elif status == MISS:
            self.metrics.cache_misses.inc()
        else:
            self.metrics.cache_coalesced.inc()
        entry = Entry(value, version, self.wall(), str(worker), self.timer())
        return Answer(entry, status, "dask")

    async def invalidate(self, key: str) -> bool:
        """Release the key's future (Dask may then forget its result)."""
        if self.held is None or key not in self.held:
            return False
        del self.held[key]
        self.metrics.cache_invalidations.inc()
        return True

    async def clear(self) -> int:
        """Release every held future."""
        if self.held is None:
            return 0
        n = len(self.held)
        self.held.clear()
        self.metrics.cache_invalidations.inc(n)
        return n

    def size(self) -> int:
        """Futures held now."""
        return 0 if self.held is None else len(self.held)

    async def close(self) -> None:
        """Release every held future."""
        if self.held is not None:
            self.held.clear()


def make_cache_stage(
    config: CacheConfig,
    store: KeyStore,
    metrics: ServiceMetrics,
    client: Callable[[], Any] = lambda: None,
    *,
    timer: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> CacheStage:
    """The stage ``cache.strategy`` names, configured by the ``cache`` section."""
    if config.strategy == "dask":
        return DaskReuse(config, store, metrics, client, timer=timer, wall=wall)
    return ServiceCache(config, store, metrics, timer=timer, wall=wall)
