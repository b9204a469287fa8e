"""Eviction policies of the in-process cache: built-ins from cachetools, and your own.

``cache.policy`` names one of:

- ``none``: no cache;
- ``lru``, ``lfu``, ``fifo``: :mod:`cachetools`' least recently used, least
  frequently used and first-in-first-out caches of ``cache.size`` entries;
- ``ttl``: cachetools' ``TTLCache``: LRU whose entries also leave once
  ``ttl_s + stale_while_revalidate_s`` has passed (``cache.ttl_s`` > 0);
- ``tlru``: cachetools' ``TLRUCache`` (time-aware LRU): each entry has its own
  time to use, here ``ttl_s + stale_while_revalidate_s`` from its insertion,
  and the entry closest to its end leaves first when the cache is full;
- ``module:Class``: your own :class:`EvictionPolicy`.

An :class:`EvictionPolicy` only decides *which key leaves* a full cache. It is
told about every insertion, hit and removal, and asked for a victim::

    class MRU(EvictionPolicy):
        \"\"\"Evict the most recently used key: the right choice for cyclic scans.\"\"\"

        def __init__(self, maxsize):
            super().__init__(maxsize)
            self.order = []                      # least recently used first

        def on_insert(self, key):
            self.order.append(key)

        def on_access(self, key):
            self.order.remove(key)
            self.order.append(key)

        def on_remove(self, key):
            self.order.remove(key)

        def victim(self):
            return self.order[-1]

:class:`PolicyCache` holds the values and calls the policy; the service
checks a ``module:Class`` against this interface when it starts (a
:class:`~scalelab.errors.PluginError` names what is missing). Every cache here
is a :class:`cachetools.Cache`, so evictions are counted the same way for all.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import cachetools

from scalelab.errors import PluginError
from scalelab.service.plugins import load_plugin

BUILTIN_POLICIES: tuple[str, ...] = ("none", "lru", "lfu", "fifo", "ttl", "tlru")
"""Policy names ``cache.policy`` knows without an import path."""

EvictHook = Callable[[Hashable, Any], None]
"""Called with ``(key, value)`` for every entry a full cache evicts."""

ExpireHook = Callable[[int], None]
"""Called with the number of entries that expired (``ttl`` and ``tlru`` policies)."""


class EvictionPolicy:
    """Decides which key leaves a full cache. Subclass it and implement :meth:`victim`.

    The cache calls ``on_insert`` when a new key enters, ``on_access`` on each
    hit, and ``on_remove`` when a key leaves for any reason (evicted,
    invalidated, replaced by a fresh copy never removes it). ``victim`` is
    asked, only while the cache is full, for a key now in the cache to evict;
    the cache then removes it (and calls ``on_remove``).
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize

    def on_insert(self, key: Hashable) -> None:
        """A new key entered the cache."""

    def on_access(self, key: Hashable) -> None:
        """A cached key was read (a hit)."""

    def on_remove(self, key: Hashable) -> None:
        """A key left the cache (evicted or invalidated)."""

    def victim(self) -> Hashable:
        """The cached key to evict now that the cache is full."""
        raise NotImplementedError


class LRUPolicy(EvictionPolicy):
    """Least recently used, written against :class:`EvictionPolicy` (a model for your own)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.order: OrderedDict[Hashable, None] = OrderedDict()

    def on_insert(self, key: Hashable) -> None:
        """The new key is the most recently used."""
        self.order[key] = None

    def on_access(self, key: Hashable) -> None:
        """A hit makes the key the most recently used."""
        self.order.move_to_end(key)

    def on_remove(self, key: Hashable) -> None:
        """Forget the key."""
        self.order.pop(key, None)

    def victim(self) -> Hashable:
        """The least recently used key."""
        return next(iter(self.order))


class PolicyError(RuntimeError):
    """A policy answered something a cache cannot act on (for example a key it does not hold)."""


class PolicyCache(cachetools.Cache):
    """A cache of ``maxsize`` entries whose evictions an :class:`EvictionPolicy` chooses."""

    def __init__(self, maxsize: int, policy: EvictionPolicy) -> None:
        super().__init__(maxsize)
        self.policy = policy

    def __getitem__(self, key: Hashable) -> Any:
        value = super().__getitem__(key)
        self.policy.on_access(key)
        return value

    def __setitem__(self, key: Hashable, value: Any) -> None:
        new = key not in self
        super().__setitem__(key, value)
        if new:
            self.policy.on_insert(key)

    def __delitem__(self, key: Hashable) -> None:
        super().__delitem__(key)
        self.policy.on_remove(key)

    def popitem(self) -> tuple[Hashable, Any]:
        """Evict the policy's victim."""
        key = self.policy.victim()
        if key not in self:
            raise PolicyError(
                f"{type(self.policy).__qualname__}.victim() returned {key!r}, "
                "which is not in the cache; return one of the keys it holds"
            )
        value = cachetools.Cache.__getitem__(self, key)
        del self[key]
        return key, value


def _counting(base: type[cachetools.Cache]) -> Any:
    """``base`` with hooks: ``on_evict(key, value)`` for every capacity eviction, and
    ``on_expire(count)`` for entries that expired (caches with an ``expire`` method)."""

    class Counting(base):  # type: ignore[misc, valid-type]
        on_evict: EvictHook | None = None
        on_expire: ExpireHook | None = None

        def popitem(self) -> tuple[Hashable, Any]:
            key, value = super().popitem()
            if self.on_evict is not None:
                self.on_evict(key, value)
            return key, value

        if hasattr(base, "expire"):

            def expire(self, time: float | None = None) -> list[tuple[Hashable, Any]]:
                expired = list(super().expire(time))
                if expired and self.on_expire is not None:
                    self.on_expire(len(expired))
                return expired

    Counting.__name__ = Counting.__qualname__ = f"Counting{base.__name__}"
    return Counting


_LRU = _counting(cachetools.LRUCache)
_LFU = _counting(cachetools.LFUCache)
_FIFO = _counting(cachetools.FIFOCache)
_TTL = _counting(cachetools.TTLCache)
_TLRU = _counting(cachetools.TLRUCache)
_POLICY = _counting(PolicyCache)


def policy_class(name: str) -> type[EvictionPolicy] | None:
    """The user policy class a ``module:Class`` name gives (built-in names give None).

    Raises :class:`~scalelab.errors.PluginError` naming ``cache.policy`` when
    the name is neither a built-in nor a class that fits :class:`EvictionPolicy`.
    """
    if name in BUILTIN_POLICIES:
        return None
    if ":" not in name:
        raise PluginError(
            f"cache.policy = {name!r}: unknown policy; use one of {', '.join(BUILTIN_POLICIES)} "
            "or 'module:Class' naming an EvictionPolicy"
        )
    return load_plugin(name, EvictionPolicy, "cache.policy")


def make_cache(
    policy: str,
    size: int,
    *,
    lifetime_s: float = 0.0,
    on_evict: EvictHook | None = None,
    on_expire: ExpireHook | None = None,
    timer: Callable[[], float] = time.monotonic,
) -> cachetools.Cache | None:
    """The in-process cache ``policy`` names, holding at most ``size`` entries.

    ``lifetime_s`` is how long the ``ttl`` and ``tlru`` policies keep an entry
    (the freshness time plus the stale window); others keep entries until they
    are evicted. ``on_evict`` is called for every entry a full cache evicts,
    ``on_expire`` with the number of entries that expired. ``none`` gives None.
    """
    if policy == "none":
        return None
    cache: Any
    if policy == "lru":
        cache = _LRU(size)
    elif policy == "lfu":
        cache = _LFU(size)
    elif policy == "fifo":
        cache = _FIFO(size)
    elif policy in ("ttl", "tlru"):
        if lifetime_s <= 0:
            raise PluginError(f"cache.policy = {policy!r} needs an expiry: set cache.ttl_s above 0")
        if policy == "ttl":
            cache = _TTL(size, lifetime_s, timer=timer)
        else:
            cache = _TLRU(size, lambda _k, _v, now: now + lifetime_s, timer=timer)
    else:
        cls = policy_class(policy)
        assert cls is not None
        try:
            instance = cls(size)
        except Exception as exc:
            raise PluginError(
                f"cache.policy = {policy!r}: {cls.__qualname__}(maxsize={size}) failed: "
                f"{type(exc).__name__}: {exc}; its __init__ must accept the cache's maxsize"
            ) from None
        cache = _POLICY(size, instance)
    cache.on_evict = on_evict
    cache.on_expire = on_expire
    return cache


def expire(cache: cachetools.Cache) -> int:
    """Drop expired entries of a ``ttl``/``tlru`` cache now; return how many left."""
    expire_fn = getattr(cache, "expire", None)
    if expire_fn is None:
        return 0
    return len(list(expire_fn()))
