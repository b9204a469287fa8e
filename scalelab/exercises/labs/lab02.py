"""Lab 02, caching: size a cache, a policy of your own, a TTL, a factorial design (public part).

Notebook ``02_caching.ipynb``. The grader sets the keys' skew and the hit
ratio the cache must reach (``che``: (alpha, target)), and the write rate and
staleness budget of the TTL question.
"""

from __future__ import annotations

import itertools
from typing import Any

from scalelab.exercises.base import AnswerError
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import Context, Param, Runs
from scalelab.exercises.live import HitRatioAbove, LiveStep
from scalelab.exercises.number import AnswerExercise, NumberExercise, PredictionExercise, as_number
from scalelab.exercises.reflection import ReflectionExercise
from scalelab.exercises.registry import lab
from scalelab.service.cache_policies import EvictionPolicy

LAB = lab(
    "lab02",
    "02_caching.ipynb",
    "Caching: hit ratios, stampedes, staleness and what matters most",
    parameters={
        "che": ((0.8, 0.4), (1.0, 0.5), (1.0, 0.6), (1.2, 0.6), (1.2, 0.7)),
        "write_rate": (0.2, 0.5, 1.0),
        "budget": (0.05, 0.1, 0.2),
    },
)
KEYS = 1000
CONCEPTS = "docs/course.md, 'Concepts'"

LAB.add(
    PredictionExercise(
        "lab02.q1",
        """Size an LRU cache before you run it, then run it at that size.

        Keys are drawn from Zipf(alpha) over 1,000 keys, with ``alpha, target =
        P.che``. Before running anything, predict with Che's approximation how
        many entries an LRU cache needs for a hit ratio of ``target``, and
        record it with ``predict``. Then run ``scenarios/caching_sweep.toml``
        with LRU at that size (rounded) and that alpha; ``check`` compares your
        size with the theory's and the run's hit ratio with the target.""",
        points=2,
        unit="entries",
        bounds=(1.0, float(KEYS)),
        hint=f"Che's approximation gives the hit ratio of a size through one unknown, the "
        f'characteristic time; here the size is the unknown ({CONCEPTS}, "Che\'s approximation").',
        usage='predict("lab02.q1", entries); later check("lab02.q1", run=che_run)',
        context={
            "run": Runs(
                "caching_sweep",
                where={
                    "service.cache.policy": "lru",
                    "scenario.alpha": Param("che", 0),
                    "scenario.keys": KEYS,
                    "scenario.dist": "zipf",
                },
                what="a caching_sweep run of LRU at the lab's alpha",
            )
        },
    )
)

LAB.add(
    ReflectionExercise(
        "lab02.q2",
        """What a stampede costs, and what coalescing changes.

        Compare the two stampede runs: what happened to the origin's load and to
        the latency of the requests that arrived during a recomputation, and
        why? Two or three sentences.""",
        points=2,
    )
)


def _is_a_policy(cls: type) -> None:
    """implements victim()"""
    victim = getattr(cls, "victim", None)
    assert victim is not None and victim is not EvictionPolicy.victim, (
        "define victim(self): the key to evict"
    )


LAB.add(
    CodeExercise(
        "lab02.q3",
        """An eviction policy that beats LRU on a scan without losing to it under Zipf.

        Subclass ``scalelab.service.cache_policies.EvictionPolicy``: the cache
        calls ``on_insert(key)``, ``on_access(key)`` (a hit) and
        ``on_remove(key)``, and asks ``victim()`` which key to evict when it is
        full. Hidden tests run it in the service's own cache: under a cyclic
        scan over more keys than it holds it must hit at least 30 points more
        often than LRU, and under Zipf keys it must stay within 5 points of
        LRU. Write it to ``my_policy.py`` beside the notebook; plugged into the
        service under ``scenarios/caching_scan.toml`` it must also beat LRU
        there by 20 points.""",
        points=3,
        expects="class",
        base=EvictionPolicy,
        public_tests=[_is_a_policy],
        live=LiveStep(
            field="service.cache.policy",
            spec="scenarios/caching_scan.toml",
            compare_with="lru",
            outcome=HitRatioAbove(0.2),
            overrides={"duration_s": 3.0, "warmup_s": 0.0, "cooldown_s": 0.0},
        ),
        hint="a scan and a skewed workload want opposite things from recency; what else do "
        "you know about a key than when it was last used?",
        usage='check("lab02.q3", MyPolicy, scheduler=..., out=OUT)',
    )
)

LAB.add(
    NumberExercise(
        "lab02.q4",
        """The longest TTL within a staleness budget.

        A hot key is read all the time and written ``P.write_rate`` times a
        second, the writes a Poisson process. Its cached entry lives ``TTL``
        seconds; then the next read computes it afresh. What is the longest TTL
        (seconds) for which at most a share ``P.budget`` of the reads return a
        version that a write has already replaced?""",
        points=2,
        unit="s",
        bounds=(0.0, None),
        hint=f"how old is the entry a read finds, and how likely is a write within that age? "
        f"Average over the ages, then solve for the TTL ({CONCEPTS}, 'Staleness and TTL').",
        usage='check("lab02.q4", ttl_s)',
    )
)


def factor_shape(answer: Any, context: Context) -> tuple[str, float]:
    """``(effect, share)`` from a full 2^k design of caching_sweep runs, three or more repeats."""
    if not isinstance(answer, tuple | list) or len(answer) != 2 or not isinstance(answer[0], str):
        raise AnswerError(
            'expected (effect, share), e.g. ("size", 0.5) or ("alpha:size", 0.1) for an interaction'
        )
    share = as_number(answer[1], "the share as a number")
    if not 0.0 <= share <= 1.0:
        raise AnswerError(f"a share of the variation is between 0 and 1, not {share:.4g}")
    runs = context.runs("run")
    swept: dict[str, set[str]] = {}
    for run in runs:
        for key, value in run.params.items():
            swept.setdefault(key, set()).add(repr(value))
    factors = [k for k, v in swept.items() if len(v) == 2]
    if len(factors) < 2 or len(factors) != len(swept):
        raise AnswerError(
            "the runs must form a 2^k design: k >= 2 swept settings with two values each "
            f"(got {', '.join(f'{k} x{len(v)}' for k, v in swept.items()) or 'no sweep'})"
        )
    cells = {tuple(repr(run.params[f]) for f in factors) for run in runs}
    if len(cells) != 2 ** len(factors) or len(runs) < 3 * len(cells):
        raise AnswerError("every combination needs three or more repeats (repeats >= 3)")
    names = {f.rsplit(".", 1)[-1] for f in factors}
    wanted = set(answer[0].replace("×", ":").replace("*", ":").split(":"))
    if not wanted <= names:
        effects = [
            ":".join(c)
            for n in range(1, len(names) + 1)
            for c in itertools.combinations(sorted(names), n)
        ]
        raise AnswerError(
            f"{answer[0]!r} is not an effect of this design; its effects are {effects}"
        )
    return ":".join(sorted(wanted)), share


LAB.add(
    AnswerExercise(
        "lab02.q5",
        """Which factor matters most? A 2^k·r factorial design of the cache.

        Run ``scenarios/caching_sweep.toml`` as a full factorial design — its
        sweep of policy, size and skew at two levels each — with three
        repeats. Taking each run's hit ratio as the response, which effect
        (a factor, or an interaction such as ``alpha:size``) explains the
        largest share of the variation, and what share is it?""",
        points=3,
        shape=factor_shape,
        hint=f"an effect's importance is its share of the total variation, not the size of its "
        f"effect alone ({CONCEPTS}, 'Factorial designs').",
        usage='check("lab02.q5", ("size", 0.5), run=factorial_runs)',
        context={
            "run": Runs(
                "caching_sweep",
                min_runs=12,
                min_repeats=3,
                what="your factorial caching_sweep runs (2^k settings, three repeats each)",
            )
        },
    )
)
