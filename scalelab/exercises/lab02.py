"""Exercises of lab 02, caching: predict a hit ratio, write an eviction policy, choose a TTL.

Notebook: ``notebooks/solutions/02_caching.ipynb``. The policy exercise is a
service component: its hidden tests run it in a
:class:`~scalelab.service.cache_policies.PolicyCache`, and its live step plugs
it into the service (``service.cache.policy``) under the cyclic-scan workload
of ``scenarios/caching_scan.toml``, beside LRU.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from scipy.optimize import brentq

from scalelab.analysis.caching import che_zipf_hit_ratio, simulate_cache, zipf_popularity
from scalelab.exercises.base import Context
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import figure
from scalelab.exercises.live import LiveOutcome, LiveStep, format_rows
from scalelab.exercises.number import Mistake, NumberExercise
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import register
from scalelab.loadgen.keys import Scan
from scalelab.service.cache_policies import EvictionPolicy, LRUPolicy, PolicyCache

LAB_TITLE = "Caching: hit ratios, stampedes and staleness"


# --- q1: predict the hit ratio ------------------------------------------------------------


def _che(c: Context) -> float:
    return che_zipf_hit_ratio(figure(c, "capacity"), int(figure(c, "keys")), figure(c, "alpha"))


def _top_c(c: Context) -> float:
    p = zipf_popularity(int(figure(c, "keys")), figure(c, "alpha"))
    return float(p[: int(figure(c, "capacity"))].sum())


register(
    NumberExercise(
        "lab02.q1",
        """Predict the hit ratio of an LRU cache before you run it (Che's approximation).

        Keys follow Zipf(alpha) over ``keys`` keys and the cache holds
        ``capacity`` entries. Solve for the characteristic time T_C and give
        the hit ratio that Che's approximation predicts for LRU.""",
        _che,
        rel_tol=0.02,
        unit="",
        hint="find T_C with sum_i (1 - exp(-p_i T_C)) = C (scipy.optimize.brentq), then "
        "weigh each key's chance of being in the cache by its popularity.",
        usage='check("lab02.q1", h, capacity=..., keys=..., alpha=...)',
        mistakes=[
            Mistake(
                lambda c: figure(c, "capacity") / figure(c, "keys"),
                "that is the hit ratio of uniformly popular keys; under Zipf the popular "
                "keys are asked for far more often.",
            ),
            Mistake(
                _top_c,
                "that is what a cache that always holds the most popular keys would get "
                "(a perfect LFU); LRU also lets unpopular keys in, and they push others out.",
            ),
        ],
        example_context=lambda: {"capacity": 100, "keys": 1000, "alpha": 1.0},
    )
)


# --- q2: the stampede -------------------------------------------------------------------


register(
    ReflectionExercise(
        "lab02.q2",
        """The stampede: what did coalescing change, and what did it cost the waiting requests?""",
        "Without coalescing every request that arrived while the hot key was being "
        "recomputed went to the origin, so each expiry sent dozens of computations and "
        "the origin's queue set the tail latency. With coalescing one computation ran "
        "and the others waited for it: origin calls fell to about one per expiry, "
        "though the waiting requests still paid one computation's latency; "
        "stale-while-revalidate would hide even that.",
    )
)


# --- q3: an eviction policy that beats LRU on a scan --------------------------------------


class SolutionMRU(EvictionPolicy):
    """The reference answer to lab02.q3: evict the most recently used key.

    Under a cyclic scan over more keys than the cache holds, the key used last
    is the one needed furthest in the future, so MRU keeps most of the cache
    useful while LRU always evicts the very key that comes next.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.order: dict[Hashable, None] = {}  # least recently used first

    def on_insert(self, key: Hashable) -> None:
        """The new key is the most recently used."""
        self.order[key] = None

    def on_access(self, key: Hashable) -> None:
        """A hit moves the key to the most recent end."""
        self.order.pop(key, None)
        self.order[key] = None

    def on_remove(self, key: Hashable) -> None:
        """Forget the key."""
        self.order.pop(key, None)

    def victim(self) -> Hashable:
        """The most recently used key."""
        return next(reversed(self.order))


def _policy_class(answer: type) -> type[EvictionPolicy]:
    """The answer as an :class:`EvictionPolicy` (a class with the methods fits too)."""
    if issubclass(answer, EvictionPolicy):
        return answer
    return type(answer.__name__, (answer, EvictionPolicy), {})


def _hit_ratio(answer: type, keys: list[Any], capacity: int, warmup: int = 0) -> float:
    cls = _policy_class(answer)
    return simulate_cache(PolicyCache(capacity, cls(capacity)), keys, warmup)


def _test_contract(answer: type) -> None:
    """holds at most maxsize keys and evicts only keys it holds"""
    cache = PolicyCache(3, _policy_class(answer)(3))
    for key in ["a", "b", "c", "a", "d", ("t", 1), "e", "a", 42]:
        try:
            cache[key]
        except KeyError:
            cache[key] = key
        assert len(cache) <= 3, "the cache grew past maxsize"
    assert len(cache) == 3, "a full cache should stay full: evict one key per new key"


def _test_invalidation(answer: type) -> None:
    """keeps working when keys are removed from outside (invalidation)"""
    cache = PolicyCache(4, _policy_class(answer)(4))
    for i in range(4):
        cache[i] = i
    del cache[1]  # DELETE /cache/1: the policy is told through on_remove
    del cache[3]
    for i in range(10, 20):
        cache[i] = i
        assert len(cache) <= 4, "the cache grew past maxsize after keys were removed"


def _test_beats_lru_on_scan(answer: type) -> None:
    """beats LRU on a cyclic scan longer than the cache"""
    keys = Scan(15, seed=1).sample(1500)
    lru = _hit_ratio(LRUPolicy, keys, 10, warmup=150)
    mine = _hit_ratio(answer, keys, 10, warmup=150)
    assert mine >= lru + 0.3, (
        f"on a scan over 15 keys with room for 10 your policy hit {mine:.0%} "
        f"(LRU: {lru:.0%}); think about which key is needed furthest in the future"
    )


class CacheLiveStep(LiveStep):
    """The live step of a cache policy: the run's figures, then the hit ratio of each policy.

    It passes when the student's policy served the load and hit more often than
    the policy it is compared with.
    """

    def run(self, component: Any, context: Mapping[str, Any]) -> LiveOutcome:
        """Run the experiment, then read each run's hit ratio from its requests."""
        outcome = super().run(component, context)
        if not outcome.ok:
            return outcome
        from scalelab.analysis import load_experiment
        from scalelab.analysis.caching import hit_ratio
        from scalelab.experiment.spec import load_spec

        name = load_spec(self.spec_path()).name
        experiment = load_experiment(Path(context.get("out") or "results") / name)
        ratios: dict[str, float] = {}
        for run in experiment.runs:
            value = run.params.get(self.field)
            label = str(value) if value == self.compare_with else "yours"
            ratios[label] = hit_ratio(run)
        rows = [dict(r, hit_ratio=ratios.get(str(r["component"]), math.nan)) for r in outcome.rows]
        print(
            format_rows([{"component": r["component"], "hit_ratio": r["hit_ratio"]} for r in rows])
        )
        mine, theirs = ratios.get("yours", math.nan), ratios.get(str(self.compare_with), math.nan)
        if not mine > theirs:
            return LiveOutcome(
                False,
                f"in the service your policy hit {mine:.1%} of reads against "
                f"{self.compare_with}'s {theirs:.1%}; it should do better on this scan",
                rows,
            )
        return LiveOutcome(
            True,
            f"in the service your policy hit {mine:.1%} of reads, {self.compare_with} "
            f"{theirs:.1%} ({experiment.path}).",
            rows,
        )


register(
    CodeExercise(
        "lab02.q3",
        """Write an eviction policy that beats LRU on a cyclic scan.

        Subclass ``scalelab.service.cache_policies.EvictionPolicy``: the cache
        calls ``on_insert(key)``, ``on_access(key)`` (a hit) and
        ``on_remove(key)``, and asks ``victim()`` for the key to evict when it
        is full. Under a scan over more keys than the cache holds, LRU never
        hits. Write the class to a file beside the notebook (``%%writefile
        my_policy.py``); the check then runs it in the service
        (``service.cache.policy``) under the scan, beside LRU.""",
        SolutionMRU,
        [_test_contract, _test_invalidation, _test_beats_lru_on_scan],
        expects="class",
        hint="keep the keys in the order they were used; which end should go?",
        live=CacheLiveStep(
            field="service.cache.policy",
            spec="scenarios/caching_scan.toml",
            overrides={"duration_s": 5.0},
            compare_with="lru",
        ),
    )
)


# --- q4: a TTL for a staleness budget -----------------------------------------------------


def stale_share(ttl_s: float, write_rate: float) -> float:
    """Share of reads of a constantly read key that are stale, for a TTL and a write rate.

    An entry's age at a read is uniform on [0, TTL); the read is stale when a
    write (Poisson, ``write_rate`` per second) came since the entry was
    computed: 1 - (1 - exp(-wT)) / (wT).
    """
    x = write_rate * ttl_s
    if x <= 0:
        return 0.0
    return 1.0 - (-math.expm1(-x)) / x


def ttl_for_budget(budget: float, write_rate: float) -> float:
    """The longest TTL (s) whose share of stale reads stays within ``budget``."""
    if not 0 < budget < 1 or write_rate <= 0:
        raise ValueError("budget must be in (0, 1) and write_rate above 0")
    high = 1.0 / write_rate
    while stale_share(high, write_rate) < budget:
        high *= 2.0
    return float(brentq(lambda t: stale_share(t, write_rate) - budget, 0.0, high, xtol=1e-9))


def _ttl(c: Context) -> float:
    return ttl_for_budget(figure(c, "budget"), figure(c, "write_rate"))


register(
    NumberExercise(
        "lab02.q4",
        """Choose the longest TTL that keeps stale reads within a budget.

        A hot key is read all the time and written ``write_rate`` times a second
        (Poisson). Its cached entry lives ``TTL`` seconds, then the next read
        computes it afresh. What is the longest TTL (in seconds) for which at
        most a share ``budget`` of reads return a superseded version?""",
        _ttl,
        rel_tol=0.05,
        unit="s",
        hint="a read finds the entry at an age spread evenly over [0, TTL); it is stale "
        "if a write came in that time. Average that chance over the ages, then solve.",
        usage='check("lab02.q4", ttl_s, write_rate=..., budget=...)',
        mistakes=[
            Mistake(
                lambda c: figure(c, "budget") / figure(c, "write_rate"),
                "that treats every read as if its entry were a full TTL old; on average "
                "entries are younger than that.",
            ),
            Mistake(
                lambda c: 2 * figure(c, "budget") / figure(c, "write_rate"),
                "close: that is the first-order approximation (share ≈ wT/2); "
                "solve the exact expression.",
            ),
        ],
        example_context=lambda: {"write_rate": 0.5, "budget": 0.1},
    )
)
