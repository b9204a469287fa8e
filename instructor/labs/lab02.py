"""Hidden part of lab 02: Che against a run, the reference policy and its tests, TTL, factorial."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np
from scipy.optimize import brentq

from scalelab.analysis import factorial_design
from scalelab.analysis.caching import (
    caching_table,
    che_zipf_hit_ratio,
    hit_ratio,
    keyed_reads,
    simulate_cache,
    zipf_popularity,
)
from scalelab.exercises import Mistake, Verdict, hide
from scalelab.exercises.context import Context
from scalelab.loadgen.keys import Scan, Zipf
from scalelab.service.cache_policies import EvictionPolicy, LRUPolicy, PolicyCache

KEYS = 1000

# --- q1: the LRU size for a target hit ratio (Che), and a run at that size -----------------


def che_size(ctx: Context) -> float:
    """The LRU capacity whose Che hit ratio is the grader's target, under its alpha."""
    alpha, target = ctx.param("che")
    return float(brentq(lambda c: che_zipf_hit_ratio(c, KEYS, alpha) - target, 0.5, KEYS - 0.5))


def _pooled_hit_ratio(runs: list[Any]) -> tuple[float, int]:
    reads = [len(keyed_reads(r)) for r in runs]
    n = sum(reads)
    if n == 0:
        return math.nan, 0
    return sum(hit_ratio(r) * k for r, k in zip(runs, reads, strict=True)) / n, n


def confirm_run(answer: float, ctx: Context) -> Verdict | None:
    """The run must be at the predicted size, and measure the target within its sampling error."""
    runs = ctx.runs("run")
    size = round(answer)
    off = [r.run_id for r in runs if int(r.spec["service"]["cache"]["size"]) != size]
    if off:
        return Verdict(
            False, f"run {off[0]} is not at the size you predicted ({size} entries); run it there."
        )
    target = float(ctx.param("che")[1])
    measured, n = _pooled_hit_ratio(runs)
    if n == 0:
        return Verdict(
            False, "the run measured no reads after its warm-up; run it longer, then check again."
        )
    band = 0.04 + 3.0 * math.sqrt(max(target * (1.0 - target), 0.0) / max(n, 1))
    text = f"The run measured a hit ratio of {measured:.3f} at {size} entries (target {target:g})."
    if not abs(measured - target) <= band:
        return Verdict(
            False,
            text + " That is further from the target than the run's sampling error allows: "
            "was it warm, and at the lab's alpha?",
        )
    return Verdict(True, text)


def _uniform(ctx: Context) -> float:
    return float(ctx.param("che")[1]) * KEYS


def _top_c(ctx: Context) -> float:
    alpha, target = ctx.param("che")
    mass = np.cumsum(zipf_popularity(KEYS, alpha))
    return float(np.searchsorted(mass, target) + 1)


hide(
    "lab02.q1",
    expected=che_size,
    rel_tol=0.05,
    confirm=confirm_run,
    mistakes=[
        Mistake(
            _uniform,
            "that size would do for equally popular keys; under Zipf the popular keys are "
            "asked for far more often.",
        ),
        Mistake(
            _top_c,
            "that many entries would do if the cache held exactly the most popular keys; LRU "
            "also lets unpopular keys in, and they push others out.",
        ),
    ],
)

# --- q2: reflection -----------------------------------------------------------------------

hide(
    "lab02.q2",
    model_answer=(
        "Without coalescing every request that arrived while the hot key was being "
        "recomputed went to the origin, so each expiry sent dozens of computations, they "
        "queued on a few Dask threads and the tail latency grew with that queue. With "
        "coalescing one computation ran per expiry and the others waited for its result: "
        "origin calls fell to about one per expiry, though the waiting requests still paid "
        "up to one computation's latency; stale-while-revalidate would hide even that."
    ),
    rubric=(
        "without coalescing: many origin calls per expiry, a queue at the origin",
        "with coalescing: one call per expiry; the others wait for it",
        "waiting requests still pay the computation's latency",
    ),
)

# --- q3: an eviction policy ---------------------------------------------------------------


class SolutionPolicy(EvictionPolicy):
    """The reference answer to lab02.q3: least frequently used, ties to the most recent.

    Under Zipf, counts keep the popular keys (as LFU does, at least as well as
    LRU). Under a cyclic scan every key has the same count, and evicting the
    newest of them keeps the rest of the cache for the next cycle (as MRU does).
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.count: dict[Hashable, int] = {}
        self.used: dict[Hashable, int] = {}
        self.clock = 0

    def _touch(self, key: Hashable) -> None:
        self.clock += 1
        self.used[key] = self.clock

    def on_insert(self, key: Hashable) -> None:
        """A new key: seen once."""
        self.count[key] = 1
        self._touch(key)

    def on_access(self, key: Hashable) -> None:
        """A hit: one more use."""
        self.count[key] = self.count.get(key, 0) + 1
        self._touch(key)

    def on_remove(self, key: Hashable) -> None:
        """Forget the key."""
        self.count.pop(key, None)
        self.used.pop(key, None)

    def victim(self) -> Hashable:
        """The least used key; of those, the most recently used."""
        return min(self.count, key=lambda k: (self.count[k], -self.used[k]))


def _policy(answer: type, capacity: int) -> PolicyCache:
    return PolicyCache(capacity, answer(capacity))


def _test_contract(answer: type) -> None:
    """holds at most maxsize keys and evicts only keys it holds"""
    cache = _policy(answer, 3)
    for key in ["a", "b", "c", "a", "d", ("t", 1), "e", "a", 42]:
        try:
            cache[key]
        except KeyError:
            cache[key] = key
        assert len(cache) <= 3, "the cache grew past maxsize"
    assert len(cache) == 3, "a full cache should stay full: evict one key per new key"


def _test_invalidation(answer: type) -> None:
    """keeps working when keys are removed from outside (invalidation)"""
    cache = _policy(answer, 4)
    for i in range(4):
        cache[i] = i
    del cache[1]
    del cache[3]
    for i in range(10, 20):
        cache[i] = i
        assert len(cache) <= 4, "the cache grew past maxsize after keys were removed"


def _test_beats_lru_on_a_scan(answer: type) -> None:
    """beats LRU by 30 points on a cyclic scan longer than the cache"""
    keys = Scan(15, seed=1).sample(1500)
    lru = simulate_cache(_policy(LRUPolicy, 10), keys, 150)
    mine = simulate_cache(_policy(answer, 10), keys, 150)
    assert mine >= lru + 0.3, (
        f"on a scan over 15 keys with room for 10 it hit {mine:.0%} (LRU {lru:.0%}); "
        "which key is needed furthest in the future?"
    )


def _test_keeps_up_with_lru_under_zipf(answer: type) -> None:
    """stays within 5 points of LRU under Zipf keys"""
    keys = Zipf(KEYS, alpha=1.2, seed=7).sample(30_000)
    lru = simulate_cache(_policy(LRUPolicy, 20), keys, 3_000)
    mine = simulate_cache(_policy(answer, 20), keys, 3_000)
    assert mine >= lru - 0.05, (
        f"under Zipf(1.2) over {KEYS} keys with room for 20 it hit {mine:.0%}, LRU {lru:.0%}: "
        "it gives up the popular keys; a scan-resistant policy must keep them too"
    )


hide(
    "lab02.q3",
    solution=SolutionPolicy,
    tests=[
        _test_contract,
        _test_invalidation,
        _test_beats_lru_on_a_scan,
        _test_keeps_up_with_lru_under_zipf,
    ],
)

# --- q4: a TTL for a staleness budget -----------------------------------------------------


def stale_share(ttl_s: float, write_rate: float) -> float:
    """Share of reads that are stale: entry ages uniform on [0, TTL), Poisson writes."""
    x = write_rate * ttl_s
    if x <= 0:
        return 0.0
    return 1.0 - (-math.expm1(-x)) / x


def ttl_for_budget(budget: float, write_rate: float) -> float:
    """The longest TTL (s) whose share of stale reads stays within ``budget``."""
    high = 1.0 / write_rate
    while stale_share(high, write_rate) < budget:
        high *= 2.0
    return float(brentq(lambda t: stale_share(t, write_rate) - budget, 1e-12, high, xtol=1e-10))


def _ttl(ctx: Context) -> float:
    return ttl_for_budget(float(ctx.param("budget")), float(ctx.param("write_rate")))


hide(
    "lab02.q4",
    expected=_ttl,
    rel_tol=0.02,
    mistakes=[
        Mistake(
            lambda ctx: float(ctx.param("budget")) / float(ctx.param("write_rate")),
            "that treats every read as finding an entry a full TTL old; on average entries "
            "are younger than that.",
        ),
        Mistake(
            lambda ctx: 2.0 * float(ctx.param("budget")) / float(ctx.param("write_rate")),
            "close: that is the first-order approximation; solve the exact expression.",
        ),
        Mistake(
            lambda ctx: (
                -math.log(1.0 - float(ctx.param("budget"))) / float(ctx.param("write_rate"))
            ),
            "that is the TTL at which the *oldest* entry is stale with that probability; a "
            "read finds entries of every age up to the TTL.",
        ),
    ],
)

# --- q5: which factor matters most --------------------------------------------------------


def allocation(ctx: Context) -> Any:
    """The 2^k design of the runs, analysed with the hit ratio as the response."""
    runs = ctx.runs("run")
    table = caching_table(runs)
    swept = list(dict.fromkeys(k for r in runs for k in r.params))
    return factorial_design(table, swept, "hit_ratio")


def judge_factor(answer: tuple[str, float], ctx: Context) -> Verdict:
    """The effect with the largest share, and that share within 0.02."""
    result = allocation(ctx)
    top = result.largest()
    names = {f.rsplit(".", 1)[-1] for f in top.factors}
    name, share = answer
    if set(name.split(":")) != names:
        return Verdict(False, f"{name!r} is not the effect that explains the most variation here.")
    if abs(share - top.share) > 0.02:
        by_effect = abs(top.estimate) / sum(abs(e.estimate) for e in result.effects)
        if abs(share - by_effect) <= 0.02:
            return Verdict(
                False,
                "right effect, but that share compares the sizes of the effects; the "
                "allocation of variation compares sums of squares, error included.",
            )
        return Verdict(False, f"right effect, but {share:.3f} is not its share of the variation.")
    return Verdict(True, f"correct: {name} explains {share:.0%} of the variation.")


def _reference_factor(ctx: Context) -> tuple[str, float]:
    top = allocation(ctx).largest()
    return ":".join(sorted(f.rsplit(".", 1)[-1] for f in top.factors)), float(top.share)


hide("lab02.q5", judge=judge_factor, reference=_reference_factor)
