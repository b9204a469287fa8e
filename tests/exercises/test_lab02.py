"""Lab 02's exercises on runs of known behaviour: references, blanks, wrong models, made-up runs."""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable
from typing import Any

import pytest

from exercises.cases import Case, check_cases
from exercises.runs import cache_requests, lab_run
from scalelab.exercises.context import Prediction
from scalelab.exercises.instructor import ensure_hidden
from scalelab.exercises.params import Parameters
from scalelab.exercises.registry import get_lab
from scalelab.service.cache_policies import EvictionPolicy, LRUPolicy

P = Parameters("lab02", {"che": (1.0, 0.5), "write_rate": 0.5, "budget": 0.1}, seed=0, smoke=False)
BEFORE, AFTER = 1779926000.0, 1779929000.0
# Hit ratios of a 2^2 design (policy x size), the size's effect far the largest.
CELLS = {("lru", 50): 0.45, ("fifo", 50): 0.41, ("lru", 200): 0.71, ("fifo", 200): 0.66}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lab02")
    lru = {"service.cache.policy": "lru", "scenario.alpha": 1.0}
    at_63 = lab_run(
        root / "che-r0",
        "caching_sweep",
        cache_requests(0.51, seed=1),
        settings=lru | {"service.cache.size": 63},
    )
    at_100 = lab_run(
        root / "che100-r0",
        "caching_sweep",
        cache_requests(0.6, seed=2),
        settings=lru | {"service.cache.size": 100},
    )
    cold = lab_run(
        root / "cold-r0",
        "caching_sweep",
        cache_requests(0.25, seed=3),
        settings=lru | {"service.cache.size": 63},
    )
    skewed = lab_run(
        root / "skew-r0",
        "caching_sweep",
        cache_requests(0.51, seed=4),
        settings={"service.cache.policy": "lru", "scenario.alpha": 1.2, "service.cache.size": 63},
    )
    factorial = []
    index = 0
    for rep in range(3):
        for (policy, size), h in CELLS.items():
            params = {"service.cache.policy": policy, "service.cache.size": size}
            factorial.append(
                lab_run(
                    root / "fact" / f"{index:03d}-policy={policy}-size={size}-r{rep}",
                    "caching_sweep",
                    cache_requests(h, n=4000, seed=100 + index),
                    params=params,
                )
            )
            index += 1
    return {
        "at_63": at_63,
        "at_100": at_100,
        "cold": cold,
        "skewed": skewed,
        "factorial": factorial,
    }


class MRU(EvictionPolicy):
    """Evicts the most recently used key: a scan's friend, Zipf's enemy."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.order: dict[Hashable, None] = {}

    def on_insert(self, key: Hashable) -> None:
        self.order[key] = None

    def on_access(self, key: Hashable) -> None:
        self.order.pop(key, None)
        self.order[key] = None

    def on_remove(self, key: Hashable) -> None:
        self.order.pop(key, None)

    def victim(self) -> Hashable:
        return next(reversed(self.order))


class RandomEviction(EvictionPolicy):
    """Evicts a key at random: beats LRU on a scan, trails it under Zipf."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.keys: list[Hashable] = []
        self.rng = random.Random()

    def on_insert(self, key: Hashable) -> None:
        self.keys.append(key)

    def on_remove(self, key: Hashable) -> None:
        self.keys.remove(key)

    def victim(self) -> Hashable:
        return self.rng.choice(self.keys)


class BlankPolicy(EvictionPolicy):
    """As released: the bodies still raise."""

    def on_insert(self, key: Hashable) -> None:
        raise NotImplementedError

    def victim(self) -> Hashable:
        raise NotImplementedError


def _cases(r: dict[str, Any]) -> list[Case]:
    from scalelab_instructor.lab02 import SolutionPolicy, allocation, che_size, ttl_for_budget

    def q1(role: str, name: str, value: Any, expect: str, says: str = "", **kw: Any) -> Case:
        prediction = Prediction(value, kw.pop("made", BEFORE), None, {})
        return Case(
            "lab02.q1",
            role,
            name,
            None,
            {"run": kw.pop("run", r["at_63"])},
            P,
            expect,
            says,
            prediction=prediction,
        )

    class _Ctx:
        params = P

        def param(self, name: str) -> Any:
            return P[name]

    size = che_size(_Ctx())  # type: ignore[arg-type]
    ttl = ttl_for_budget(0.1, 0.5)

    def q5(role: str, name: str, answer: Any, expect: str, says: str = "", **ctx: Any) -> Case:
        return Case("lab02.q5", role, name, answer, ctx or {"run": r["factorial"]}, P, expect, says)

    class _Runs:
        params = P

        def runs(self, name: str) -> list[Any]:
            return r["factorial"]

    design = allocation(_Runs())  # type: ignore[arg-type]
    top = design.largest()
    by_effect = abs(top.estimate) / sum(abs(e.estimate) for e in design.effects)

    return [
        q1("reference", "Che inverted", size, "pass", "measured a hit ratio"),
        q1("blank", "ellipsis", ..., "not answered"),
        q1("wrong model", "uniform keys", 0.5 * 1000, "fail", "equally popular"),
        q1("wrong model", "the most popular keys", 23.0, "fail", "most popular keys"),
        q1(
            "made-up context",
            "a run at another size",
            size,
            "fail",
            "not at the size",
            run=r["at_100"],
        ),
        q1("made-up context", "a cold run", size, "fail", "sampling error", run=r["cold"]),
        q1("made-up context", "another skew", size, "fail", "scenario.alpha", run=r["skewed"]),
        q1("made-up context", "predicted after the run", size, "fail", "after run", made=AFTER),
        Case(
            "lab02.q2",
            "reference",
            "model answer",
            "Without coalescing every request that "
            "arrived during the recomputation went to the origin; with it one computation "
            "ran per expiry and the others waited for it.",
            {},
            P,
            "needs review",
        ),
        Case("lab02.q2", "blank", "none", None, {}, P, "not answered"),
        Case(
            "lab02.q2", "wrong model", "too short", "Coalescing helps.", {}, P, "fail", "too short"
        ),
        Case(
            "lab02.q2",
            "made-up context",
            "with a run",
            "Each expiry sent dozens of requests to "
            "the origin without coalescing; with coalescing one computation ran and the rest "
            "waited for it, paying its latency.",
            {"run": r["at_63"]},
            P,
            "needs review",
        ),
        Case("lab02.q3", "reference", "LFU, ties to the newest", SolutionPolicy, {}, P, "pass"),
        Case("lab02.q3", "blank", "not implemented", BlankPolicy, {}, P, "not answered"),
        Case("lab02.q3", "wrong model", "LRU itself", LRUPolicy, {}, P, "fail", "scan"),
        Case("lab02.q3", "wrong model", "MRU", MRU, {}, P, "fail", "Zipf"),
        Case("lab02.q3", "wrong model", "random eviction", RandomEviction, {}, P, "fail", "Zipf"),
        Case("lab02.q3", "made-up context", "not a policy", dict, {}, P, "fail", "must subclass"),
        Case("lab02.q4", "reference", "exact", ttl, {}, P, "pass"),
        Case("lab02.q4", "blank", "ellipsis", ..., {}, P, "not answered"),
        Case("lab02.q4", "wrong model", "full age", 0.1 / 0.5, {}, P, "fail", "full TTL old"),
        Case("lab02.q4", "wrong model", "first order", 2 * 0.1 / 0.5, {}, P, "fail", "first-order"),
        Case(
            "lab02.q4",
            "made-up context",
            "another write rate's TTL",
            ttl_for_budget(0.1, 1.0),
            {"write_rate": 1.0},
            P,
            "fail",
        ),
        q5("reference", "largest share", (top.name.rsplit(".", 1)[-1], top.share), "pass"),
        q5("blank", "ellipses", (..., ...), "not answered"),
        q5(
            "wrong model",
            "share by effect size",
            ("size", by_effect),
            "fail",
            "sizes of the effects",
        ),
        q5("wrong model", "another factor", ("policy", top.share), "fail", "not the effect"),
        q5(
            "made-up context",
            "two repeats",
            ("size", top.share),
            "fail",
            "at least 12",
            run=[x for x in r["factorial"] if x.repeat < 2],
        ),
        q5(
            "made-up context",
            "one factor",
            ("size", top.share),
            "fail",
            "at least 12",
            run=[x for x in r["factorial"] if x.params["service.cache.policy"] == "lru"],
        ),
        q5("made-up context", "a made-up share", ("size", 0.5), "fail", "not its share"),
    ]


ensure_hidden()


@pytest.fixture(scope="module")
def cases(runs: dict[str, Any]) -> list[Case]:
    return _cases(runs)


@pytest.mark.parametrize("exercise", [e.id for e in get_lab("lab02").exercises])
def test_exercise(exercise: str, cases: list[Case]) -> None:
    check_cases(exercise, cases)


def test_factorial_cells_are_the_ones_written(runs: dict[str, Any]) -> None:
    from scalelab.analysis.caching import caching_table

    table = caching_table(runs["factorial"])
    for policy, size in itertools.product(("lru", "fifo"), (50, 200)):
        cell = table[(table["policy"] == policy) & (table["size"] == size)]
        assert len(cell) == 3
        assert abs(cell["hit_ratio"].mean() - CELLS[(policy, size)]) < 0.03
