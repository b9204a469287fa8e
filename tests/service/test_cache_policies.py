"""Eviction policies: the cachetools built-ins as the service builds them, and plugged-in ones."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

import pytest

from scalelab.config import parse_config
from scalelab.errors import ConfigError, PluginError
from scalelab.service.cache_policies import (
    EvictionPolicy,
    LRUPolicy,
    PolicyCache,
    PolicyError,
    make_cache,
    policy_class,
)


class Clock:
    """A timer the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class NewestOut(EvictionPolicy):
    """Evicts the key inserted last (MRU without hits): keeps the first keys it saw."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.order: list[Hashable] = []

    def on_insert(self, key: Hashable) -> None:
        self.order.append(key)

    def on_remove(self, key: Hashable) -> None:
        self.order.remove(key)

    def victim(self) -> Hashable:
        return self.order[-1]


class Liar(EvictionPolicy):
    def victim(self) -> Hashable:
        return "not-there"


def read(cache: Any, key: Hashable) -> bool:
    """One read through the cache: True on a hit, else the key is stored."""
    try:
        cache[key]
        return True
    except KeyError:
        cache[key] = key
        return False


def test_lru_evicts_the_least_recently_used_and_counts_it() -> None:
    evicted: list[Hashable] = []
    cache = make_cache("lru", 2, on_evict=lambda k, v: evicted.append(k))
    read(cache, "a"), read(cache, "b"), read(cache, "a"), read(cache, "c")
    assert evicted == ["b"]
    assert set(cache) == {"a", "c"}


def test_lfu_keeps_the_frequent_key_and_fifo_does_not() -> None:
    for policy, survivor in (("lfu", True), ("fifo", False)):
        cache = make_cache(policy, 2)
        for key in ["hot", "hot", "hot", "x", "y"]:
            read(cache, key)
        assert ("hot" in cache) is survivor, policy


def test_ttl_policy_expires_entries_and_counts_expiries() -> None:
    clock = Clock()
    expired: list[int] = []
    cache = make_cache("ttl", 10, lifetime_s=5.0, timer=clock, on_expire=expired.append)
    read(cache, "a")
    clock.now = 4.9
    assert read(cache, "a")
    clock.now = 5.1
    assert not read(cache, "a")  # expired, then stored again
    assert sum(expired) == 1


def test_tlru_expires_each_entry_on_its_own_time() -> None:
    clock = Clock()
    cache = make_cache("tlru", 10, lifetime_s=2.0, timer=clock)
    read(cache, "a")
    clock.now = 1.5
    read(cache, "b")
    clock.now = 2.5
    assert "a" not in cache and "b" in cache


def test_expiring_policy_without_lifetime_names_the_fix() -> None:
    with pytest.raises(PluginError, match="ttl_s"):
        make_cache("ttl", 10)
    with pytest.raises(ConfigError, match="ttl_s"):
        parse_config({"cache": {"policy": "tlru"}})


def test_lru_policy_through_policy_cache_matches_cachetools_lru() -> None:
    rng = random.Random(3)
    keys = [int(rng.paretovariate(1.0)) % 60 for _ in range(5000)]
    mine = PolicyCache(20, LRUPolicy(20))
    theirs = make_cache("lru", 20)
    assert [read(mine, k) for k in keys] == [read(theirs, k) for k in keys]


def test_a_plugged_policy_chooses_the_victim() -> None:
    cache = make_cache(f"{__name__}:NewestOut", 3)
    assert type(cache).__name__ == "CountingPolicyCache"
    hits = [read(cache, k) for k in [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]]
    # keeps 1 and 2 (the first keys) and churns the third slot
    assert hits == [False] * 5 + [True, True, False, False, False]
    assert len(cache) == 3


def test_a_victim_outside_the_cache_is_an_error_that_names_the_policy() -> None:
    cache = PolicyCache(1, Liar(1))
    cache["a"] = 1
    with pytest.raises(PolicyError, match="Liar.victim"):
        cache["b"] = 2


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope", "unknown policy"),
        ("no_such_module_xyz:Policy", "cannot import module"),
        (f"{__name__}:Missing", "has no attribute"),
        (f"{__name__}:read", "not a class"),
        (f"{__name__}:Clock", "missing method 'victim'"),
    ],
)
def test_bad_policy_paths_raise_plugin_errors_naming_the_field(path: str, message: str) -> None:
    with pytest.raises(PluginError, match=message) as info:
        policy_class(path)
    assert "cache.policy" in str(info.value)


def test_duck_typed_policy_fits_and_builtins_need_no_class() -> None:
    assert policy_class("lru") is None
    assert policy_class(f"{__name__}:NewestOut") is NewestOut
