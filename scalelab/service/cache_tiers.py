"""Where cached entries live: the in-process tier, a shared Redis tier, or both as two levels.

- ``local``: a :mod:`cachetools` cache in the service process (see
  :mod:`.cache_policies`), bounded by ``cache.size`` entries.
- ``redis``: a Redis server shared by every service that points at it. The
  in-process tier stands in while Redis is away.
- ``both``: in-process first, then Redis; a Redis hit is copied into the
  in-process tier.

Redis calls have a short deadline (``cache.redis_timeout_ms``) and no retries.
A failed or slow call marks Redis as away for ``cache.redis_retry_s``: during
that time requests use the in-process tier only (counted as fallbacks) and
never wait for Redis, so losing Redis costs hit ratio, not requests. The first
call after that time tries Redis again. ``scalelab_cache_redis_up`` is 0 until
Redis has answered once, and while it is away.

A cache of ``cache.size`` entries holds at most that many keys, counting the
keys being computed: when a miss starts, the in-process tier reserves the
key's slot (:class:`Reserved`, evicting as its policy says), and the value
fills the slot when it arrives, unless the slot was evicted meanwhile. So the
cache behaves as the policy's model says (Che's approximation assumes a key
enters an LRU cache when it is asked for), not as a larger one.

Ages are measured on the monotonic clock (``Entry.born``); the wall-clock
``computed_at`` is what travels through Redis to other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cachetools

from scalelab.service.cache_policies import expire
from scalelab.service.metrics import ServiceMetrics

REDIS_PREFIX = "scalelab:cache:"
"""Prefix of the Redis keys of cached entries (``DELETE /cache`` removes only these)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached value: the version of the key it was computed at, when (Unix seconds), the
    worker that computed it, and when on this process's monotonic clock (for ages)."""

    value: Any
    version: int
    computed_at: float
    worker: str = ""
    born: float = 0.0

    def to_json(self) -> bytes:
        """The entry as Redis stores it."""
        return json.dumps(
            {"v": self.value, "ver": self.version, "t": self.computed_at, "w": self.worker}
        ).encode()

    @classmethod
    def from_json(
        cls, data: bytes | str, now_wall: float | None = None, now_mono: float | None = None
    ) -> Entry:
        """An entry read back from Redis; ``born`` is placed on this process's monotonic
        clock from its wall-clock age (``now_wall``/``now_mono``: the clocks' readings now)."""
        d = json.loads(data)
        computed_at = float(d["t"])
        born = 0.0
        if now_wall is not None and now_mono is not None:
            born = now_mono - max(0.0, now_wall - computed_at)
        return cls(d["v"], int(d["ver"]), computed_at, str(d.get("w", "")), born)


class Reserved:
    """The slot of a key being computed, held in the in-process tier until its value arrives."""

    __slots__ = ("version",)

    def __init__(self, version: int) -> None:
        self.version = version

    def __repr__(self) -> str:
        return f"Reserved(v{self.version})"


_ORDER_KEEPING = (cachetools.LRUCache, cachetools.LFUCache, cachetools.FIFOCache)


class LocalTier:
    """The in-process tier: a cachetools cache of entries (or none, when caching is off)."""

    def __init__(self, cache: cachetools.Cache | None) -> None:
        self.cache = cache

    def get(self, key: Hashable) -> Entry | Reserved | None:
        """The entry of ``key``, its reservation, or None (a read counts as an access)."""
        cache = self.cache
        if cache is None:
            return None
        try:
            entry: Entry | Reserved = cache[key]
        except KeyError:
            return None
        return entry

    def set(self, key: Hashable, entry: Entry) -> None:
        """Store ``entry`` (a full cache evicts first, as its policy says)."""
        if self.cache is not None:
            self.cache[key] = entry

    def reserve(self, key: Hashable, version: int) -> Reserved | None:
        """Take the slot of ``key`` for a computation of ``version`` (evicting if full)."""
        if self.cache is None:
            return None
        slot = Reserved(version)
        self.cache[key] = slot
        return slot

    def fill(self, key: Hashable, slot: Reserved | None, entry: Entry) -> bool:
        """Put ``entry`` in the slot reserved for it; False when the slot was evicted.

        For caches ordered by use (LRU, LFU, FIFO, and user policies) the slot
        keeps its place: the key was last used when it was asked for.
        """
        cache = self.cache
        if cache is None:
            return False
        if slot is None:
            cache[key] = entry
            return True
        try:
            held = cachetools.Cache.__getitem__(cache, key)
        except KeyError:
            return False
        if held is not slot:
            return False
        if isinstance(cache, _ORDER_KEEPING) or hasattr(cache, "policy"):
            cachetools.Cache.__setitem__(cache, key, entry)
        else:
            cache[key] = entry
        return True

    def release(self, key: Hashable, slot: Reserved | None) -> None:
        """Give up a slot whose computation failed (only if it still holds that slot)."""
        cache = self.cache
        if cache is None or slot is None:
            return
        try:
            held = cachetools.Cache.__getitem__(cache, key)
        except KeyError:
            return
        if held is slot:
            with contextlib.suppress(KeyError):
                del cache[key]

    def delete(self, key: Hashable) -> bool:
        """Remove ``key``; True when it was held."""
        cache = self.cache
        if cache is None or key not in cache:
            return False
        try:
            del cache[key]
        except KeyError:  # an expired entry of a TTL cache
            return False
        return True

    def clear(self) -> int:
        """Remove every entry; return how many there were."""
        cache = self.cache
        if cache is None:
            return 0
        n = len(cache)
        for key in list(cache.keys()):
            try:
                del cache[key]
            except KeyError:
                n -= 1
        return n

    def size(self) -> int:
        """Entries held now (expired ones dropped first)."""
        if self.cache is None:
            return 0
        expire(self.cache)
        return len(self.cache)


class RedisUnavailable(Exception):
    """Redis did not answer in time, or not at all; the in-process tier stands in."""


class RedisTier:
    """Entries in a shared Redis server, with a deadline on every call and a retry pause."""

    def __init__(
        self,
        url: str,
        metrics: ServiceMetrics,
        *,
        timeout_s: float = 0.05,
        retry_s: float = 1.0,
        lifetime_s: float = 0.0,
        prefix: str = REDIS_PREFIX,
        timer: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.lifetime_ms = int(lifetime_s * 1000) if lifetime_s > 0 else None
        self.prefix = prefix
        self.timer = timer
        self.clock = clock
        self.down_until = 0.0
        self.answered = False
        self.client = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        metrics.redis_up.set(0)  # up once Redis has answered

    def available(self) -> bool:
        """False while Redis is taken as away (after a failure, for ``retry_s``)."""
        return self.timer() >= self.down_until

    async def _call(self, what: str, coro: Any) -> Any:
        """Await a Redis call within the deadline; on failure mark Redis away and raise."""
        try:
            result = await asyncio.wait_for(coro, self.timeout_s)
        except Exception as exc:  # timeouts, refused connections, protocol errors alike
            self._away()
            raise RedisUnavailable(f"Redis {what}: {type(exc).__name__}: {exc}") from None
        self._answered()
        return result

    def _away(self) -> None:
        self.down_until = self.timer() + self.retry_s
        self.metrics.redis_errors.inc()
        self.metrics.redis_up.set(0)

    def _answered(self) -> None:
        if self.down_until or not self.answered:
            self.down_until = 0.0
            self.answered = True
            self.metrics.redis_up.set(1)

    async def get(self, key: str) -> Entry | None:
        """The entry of ``key`` in Redis, or None; :class:`RedisUnavailable` when Redis is away."""
        data = await self._call("GET", self.client.get(self.prefix + key))
        if data is None:
            return None
        try:
            return Entry.from_json(data, self.clock(), self.timer())
        except (ValueError, KeyError, TypeError):
            return None  # not an entry of ours: a miss

    async def set(self, key: str, entry: Entry) -> None:
        """Store ``entry`` (for ``lifetime_s`` when set)."""
        await self._call(
            "SET", self.client.set(self.prefix + key, entry.to_json(), px=self.lifetime_ms)
        )

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when Redis held it."""
        return bool(await self._call("DEL", self.client.delete(self.prefix + key)))

    async def clear(self) -> int:
        """Remove every entry under the prefix; return how many."""

        async def scan_and_delete() -> int:
            removed = 0
            async for batch in _batches(self.client.scan_iter(match=self.prefix + "*", count=500)):
                removed += int(await self.client.unlink(*batch))
            return removed

        try:
            result = await asyncio.wait_for(scan_and_delete(), max(self.timeout_s, 5.0))
        except Exception as exc:
            self._away()
            raise RedisUnavailable(f"Redis clear: {type(exc).__name__}: {exc}") from None
        self._answered()
        return result

    async def size(self) -> int | None:
        """Keys in the Redis database (None when Redis is away)."""
        if not self.available():
            return None
        try:
            return int(await self._call("DBSIZE", self.client.dbsize()))
        except RedisUnavailable:
            return None

    async def close(self) -> None:
        """Close the connections."""
        with contextlib.suppress(Exception):  # closing must not fail the service's shutdown
            await asyncio.wait_for(self.client.aclose(), 2.0)


async def _batches(keys: Any, size: int = 500) -> Any:
    batch: list[Any] = []
    async for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Tiers:
    """The tiers ``cache.tier`` names, read in order; the in-process tier stands in for Redis."""

    def __init__(
        self, mode: str, local: LocalTier, redis: RedisTier | None, metrics: ServiceMetrics
    ) -> None:
        self.mode = mode
        self.local = local
        self.redis = redis if mode in ("redis", "both") else None
        self.metrics = metrics

    async def get(self, key: str) -> tuple[Entry | Reserved | None, str]:
        """The entry of ``key`` (or its reservation) and the tier that held it."""
        mode = self.mode
        if mode != "redis":
            entry = self.local.get(key)
            if entry is not None or self.redis is None:
                return entry, "local"
        redis = self.redis
        assert redis is not None
        if redis.available():
            try:
                entry = await redis.get(key)
            except RedisUnavailable:
                pass
            else:
                if entry is not None and mode == "both":
                    self.local.set(key, entry)
                return entry, "redis"
        self.metrics.redis_fallbacks.inc()
        if mode == "redis":
            return self.local.get(key), "local"
        return None, "local"

    def reserve(self, key: str, version: int) -> Reserved | None:
        """Reserve the in-process slot of a key whose computation starts (not for ``redis``)."""
        if self.mode == "redis":
            return None
        return self.local.reserve(key, version)

    def release(self, key: str, slot: Reserved | None) -> None:
        """Give up the reservation of a computation that failed."""
        self.local.release(key, slot)

    async def set(self, key: str, entry: Entry, slot: Reserved | None = None) -> None:
        """Store ``entry`` in every tier in use now (in-process: in its reserved slot)."""
        redis = self.redis
        if redis is not None and redis.available():
            try:
                await redis.set(key, entry)
                stored = True
            except RedisUnavailable:
                stored = False
            if stored and self.mode == "redis":
                return
        if slot is not None:
            self.local.fill(key, slot, entry)
        else:
            self.local.set(key, entry)

    async def delete(self, key: str) -> bool:
        """Remove ``key`` from every tier; True when one held it."""
        found = self.local.delete(key)
        if self.redis is not None:
            with contextlib.suppress(RedisUnavailable):
                found = await self.redis.delete(key) or found
        return found

    async def clear(self) -> int:
        """Remove every entry from every tier; return how many were removed."""
        removed = self.local.clear()
        if self.redis is not None:
            with contextlib.suppress(RedisUnavailable):
                removed += await self.redis.clear()
        return removed

    async def close(self) -> None:
        """Close the Redis connections."""
        if self.redis is not None:
            await self.redis.close()
