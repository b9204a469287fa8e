"""The cache stage without a cluster: hits, coalescing, stale-while-revalidate, stale-on-error,
invalidation, and Redis away (a closed port), against an origin that counts its computations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from scalelab.config import CacheConfig
from scalelab.ports import free_port
from scalelab.service.cache_origin import KeyStore
from scalelab.service.cache_stage import ServiceCache
from scalelab.service.cache_tiers import Entry
from scalelab.service.coalescing import Coalescer
from scalelab.service.metrics import ServiceMetrics
from scalelab.service.workloads import OriginError, keyed_value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingOrigin:
    """Computes ``keyed_value`` after ``delay_s``; counts calls; fails while ``failing``."""

    def __init__(self, clock: Clock, delay_s: float = 0.0) -> None:
        self.clock = clock
        self.delay_s = delay_s
        self.calls = 0
        self.failing = False

    async def compute(self, key: str, version: int) -> Entry:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.failing:
            raise OriginError("backend down")
        return Entry(keyed_value(key, version), version, self.clock(), "w1", self.clock())

    def submit(self, key: str, version: int) -> Any:
        raise AssertionError("the service strategy never submits tasks itself")


def make(delay_s: float = 0.0, **cache: Any) -> tuple[ServiceCache, CountingOrigin, Clock]:
    clock = Clock()
    store = KeyStore(clock, wall=clock)
    origin = CountingOrigin(clock, delay_s)
    config = CacheConfig.model_validate({"policy": "lru", "size": 100, **cache})
    stage = ServiceCache(config, store, ServiceMetrics(), timer=clock, wall=clock)
    return stage, origin, clock


def metric(stage: ServiceCache, name: str, **labels: str) -> float:
    value = stage.metrics.registry.get_sample_value(name, labels or None)
    return float(value or 0.0)


def test_miss_then_hit_with_the_value_of_the_key() -> None:
    stage, origin, _ = make()

    async def go() -> list[Any]:
        return [await stage.fetch("a", origin) for _ in range(3)]

    answers = asyncio.run(go())
    assert [a.status for a in answers] == ["miss", "hit", "hit"]
    assert {a.entry.value for a in answers} == {keyed_value("a", 0)}
    assert origin.calls == 1
    assert metric(stage, "scalelab_cache_hits_total", tier="local") == 2
    assert metric(stage, "scalelab_cache_misses_total") == 1


@pytest.mark.parametrize(("coalesce", "calls"), [(True, 1), (False, 50)])
def test_concurrent_misses_coalesce_into_one_origin_call(coalesce: bool, calls: int) -> None:
    stage, origin, _ = make(delay_s=0.05, coalesce=coalesce)

    async def go() -> list[Any]:
        return list(await asyncio.gather(*(stage.fetch("hot", origin) for _ in range(50))))

    answers = asyncio.run(go())
    assert origin.calls == calls
    statuses = [a.status for a in answers]
    if coalesce:
        assert statuses.count("miss") == 1 and statuses.count("coalesced") == 49
        assert metric(stage, "scalelab_cache_coalesced_total") == 49
    else:
        assert statuses == ["miss"] * 50


def test_stale_while_revalidate_serves_stale_once_and_refreshes_in_background() -> None:
    stage, origin, clock = make(delay_s=0.02, ttl_s=1.0, stale_while_revalidate_s=5.0)

    async def go() -> list[str]:
        out = [(await stage.fetch("k", origin)).status]
        stage.store.write("k")
        clock.now += 2.0  # past the TTL, within the stale window
        stale = await asyncio.gather(*(stage.fetch("k", origin) for _ in range(5)))
        out += [a.status for a in stale]
        assert {a.entry.version for a in stale} == {0}
        await asyncio.sleep(0.1)  # the refresh lands
        fresh = await stage.fetch("k", origin)
        assert fresh.entry.version == 1
        out.append(fresh.status)
        clock.now += 10.0  # past the stale window too: a plain miss
        out.append((await stage.fetch("k", origin)).status)
        return out

    assert asyncio.run(go()) == ["miss"] + ["stale"] * 5 + ["hit", "miss"]
    assert origin.calls == 3  # the first miss, one refresh for five stale reads, the last miss
    assert metric(stage, "scalelab_cache_refreshes_total") == 1
    assert metric(stage, "scalelab_cache_stale_total", reason="revalidate") == 5


@pytest.mark.parametrize("serve_stale", [True, False])
def test_stale_on_error_serves_the_old_entry_when_the_origin_fails(serve_stale: bool) -> None:
    stage, origin, clock = make(ttl_s=1.0, stale_on_error=serve_stale)

    async def go() -> Any:
        await stage.fetch("k", origin)
        clock.now += 30.0
        origin.failing = True
        return await stage.fetch("k", origin)

    if serve_stale:
        answer = asyncio.run(go())
        assert answer.status == "stale" and answer.entry.value == keyed_value("k", 0)
        assert metric(stage, "scalelab_cache_stale_total", reason="error") == 1
    else:
        with pytest.raises(OriginError):
            asyncio.run(go())
    assert metric(stage, "scalelab_cache_origin_errors_total") == 1


def test_invalidation_removes_keys() -> None:
    stage, origin, _ = make()

    async def go() -> list[Any]:
        await stage.fetch("a", origin)
        await stage.fetch("b", origin)
        removed = [await stage.invalidate("a"), await stage.invalidate("a")]
        after = (await stage.fetch("a", origin)).status
        return [*removed, after, await stage.clear(), stage.size()]

    assert asyncio.run(go()) == [True, False, "miss", 2, 0]


def test_capacity_evictions_are_counted_and_size_is_bounded() -> None:
    stage, origin, _ = make(size=3)

    async def go() -> None:
        for i in range(10):
            await stage.fetch(f"k{i}", origin)

    asyncio.run(go())
    assert stage.size() == 3
    assert metric(stage, "scalelab_cache_evictions_total", reason="capacity") == 7


def test_no_cache_computes_every_request() -> None:
    stage, origin, _ = make(policy="none")

    async def go() -> list[str]:
        return [(await stage.fetch("a", origin)).status for _ in range(3)]

    assert asyncio.run(go()) == ["miss"] * 3 and origin.calls == 3


def test_redis_away_degrades_to_the_in_process_tier() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    stage, origin, _ = make(tier="redis", redis_url=url, redis_timeout_ms=50, redis_retry_s=60)

    async def go() -> list[str]:
        out = [(await stage.fetch("a", origin)).status for _ in range(3)]
        await stage.close()
        return out

    assert asyncio.run(go()) == ["miss", "hit", "hit"]
    assert origin.calls == 1
    assert metric(stage, "scalelab_cache_redis_errors_total") >= 1
    assert metric(stage, "scalelab_cache_redis_fallbacks_total") == 3
    assert metric(stage, "scalelab_cache_redis_up") == 0


def test_key_store_measures_how_long_a_version_has_been_superseded() -> None:
    clock = Clock()
    store = KeyStore(clock)
    assert store.version("x") == 0 and store.stale_ms("x", 0) == 0
    clock.now += 1.0
    store.write("x")
    clock.now += 1.0
    store.write("x")
    clock.now += 0.5
    assert store.version("x") == 2
    assert store.stale_ms("x", 0) == pytest.approx(1500.0)  # superseded by version 1
    assert store.stale_ms("x", 1) == pytest.approx(500.0)
    assert store.stale_ms("x", 2) == 0.0


def test_coalescer_survives_a_caller_that_goes_away() -> None:
    coalescer: Coalescer[int] = Coalescer()
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 7

    async def go() -> int:
        first = asyncio.ensure_future(coalescer.run("k", compute))
        await asyncio.sleep(0.01)
        first.cancel()
        value, leader = await coalescer.run("k", compute)
        assert not leader
        return value

    assert asyncio.run(go()) == 7 and calls == 1


def test_a_key_being_computed_takes_its_slot_so_the_cache_is_never_larger() -> None:
    """LRU of 2: while b and c are computed they hold the two slots, so a has left.

    Che's approximation (and any LRU of 2 entries) has a evicted by the requests
    for b and c; a cache that gave computing keys no slot would still hit a.
    """
    stage, origin, _ = make(delay_s=0.05, size=2)

    async def go() -> list[str]:
        first = (await stage.fetch("a", origin)).status
        in_flight = [asyncio.ensure_future(stage.fetch(k, origin)) for k in ("b", "c")]
        await asyncio.sleep(0.01)
        assert stage.size() == 2  # b and c, both still being computed
        again = (await stage.fetch("a", origin)).status
        await asyncio.gather(*in_flight)
        return [first, again]

    assert asyncio.run(go()) == ["miss", "miss"]
    assert stage.size() == 2
    assert metric(stage, "scalelab_cache_evictions_total", reason="capacity") >= 2


def test_a_slot_evicted_before_its_value_arrives_stores_nothing() -> None:
    stage, origin, _ = make(delay_s=0.05, size=1)

    async def go() -> list[str]:
        slow = asyncio.ensure_future(stage.fetch("a", origin))
        await asyncio.sleep(0.01)
        await stage.fetch("b", CountingOrigin(origin.clock))  # takes the only slot
        await slow
        return [(await stage.fetch(k, origin)).status for k in ("b", "a")]

    assert asyncio.run(go()) == ["hit", "miss"]


def read_after_write_is_never_older(stage: ServiceCache, origin: CountingOrigin) -> list[Any]:
    """A slow computation of version 0 is in flight when a write is answered; every read
    that starts after the write must see version 1, now and later (nothing old is stored)."""

    async def go() -> list[Any]:
        await stage.clear()
        early = asyncio.ensure_future(stage.fetch("w", origin))  # computes version 0, slowly
        await asyncio.sleep(0.02)
        stage.store.write("w")  # the write is answered after invalidating, as the layer does
        await stage.invalidate("w")
        after = await stage.fetch("w", origin)
        old = await early
        later = [await stage.fetch("w", origin) for _ in range(3)]
        return [old.entry.version, after.entry.version, after.status] + [
            (a.entry.version, a.status) for a in later
        ]

    return asyncio.run(go())


def test_no_read_after_a_write_gets_an_older_version_in_process() -> None:
    stage, origin, _ = make(delay_s=0.1, invalidate_on_write=True)
    assert read_after_write_is_never_older(stage, origin) == [
        0,
        1,
        "miss",
        *[(1, "hit")] * 3,
    ]


def test_a_write_unaware_cache_keeps_serving_what_it_holds_and_says_how_stale() -> None:
    """Without invalidate_on_write the cache does not know of writes: it serves its entry
    until the TTL, and the service's key store measures the staleness."""
    stage, origin, clock = make(invalidate_on_write=False, ttl_s=10.0)

    async def go() -> tuple[Any, float]:
        await stage.fetch("u", origin)
        stage.store.write("u")
        clock.now += 2.0
        answer = await stage.fetch("u", origin)
        return answer, stage.store.stale_ms("u", answer.entry.version)

    answer, stale_ms = asyncio.run(go())
    assert (answer.status, answer.entry.version) == ("hit", 0)
    assert stale_ms == pytest.approx(2000.0)
