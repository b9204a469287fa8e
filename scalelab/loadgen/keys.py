"""Key distributions for keyed workloads: which key each request asks for.

Pure and seeded (no Locust, no numpy): the same seed gives the same sequence
of keys, and :meth:`KeyDistribution.popularity` gives the probability of each
key, so the analysis can predict a hit ratio for the very workload a run used
(:func:`distribution_from_spec` reads it back from a run's spec).

- ``uniform``: every one of ``n`` keys alike;
- ``zipf``: key of rank ``i`` (1-based) with probability proportional to
  ``1 / i**alpha``;
- ``hotspot``: a share ``hot_share`` of requests to the first ``hot_keys``
  fraction of keys, the rest spread over the others (both uniformly);
- ``scan``: keys ``0, 1, ..., n-1, 0, 1, ...`` in turn (a cyclic scan, the
  workload that defeats LRU when ``n`` exceeds the cache);
- ``shifting``: Zipf whose ranking moves by ``shift_keys`` keys every
  ``shift_every_s`` seconds, so the hot set changes over time.

Key ``i`` is named ``k<i>`` (:func:`key_name`); rank 1 of Zipf is ``k0``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scalelab.errors import ScaleLabError

DISTRIBUTIONS: tuple[str, ...] = ("uniform", "zipf", "hotspot", "scan", "shifting")
"""Names :func:`make_distribution` knows."""


def key_name(index: int) -> str:
    """The name of key ``index``: ``k<index>``."""
    return f"k{index}"


def zipf_weights(n: int, alpha: float) -> list[float]:
    """Probabilities of ranks ``1..n`` under Zipf(``alpha``), summing to 1."""
    raw = [1.0 / (i**alpha) for i in range(1, n + 1)]
    total = math.fsum(raw)
    return [w / total for w in raw]


@dataclass
class KeyDistribution:
    """Draws key indices in ``[0, n)``; subclasses say how. ``seed`` fixes the sequence."""

    n: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ScaleLabError(f"--keys {self.n}: give at least 1 key")
        self.rng = random.Random(f"scalelab-keys:{self.seed}")

    def index(self, t: float = 0.0) -> int:
        """The next key's index; ``t`` is seconds since the load started (for time-varying ones)."""
        raise NotImplementedError

    def key(self, t: float = 0.0) -> str:
        """The next key's name."""
        return key_name(self.index(t))

    def popularity(self, t: float = 0.0) -> list[float]:
        """The probability of each key index at time ``t`` (a cyclic scan: its long-run share)."""
        raise NotImplementedError

    def sample(self, count: int, t: float = 0.0) -> list[int]:
        """``count`` indices drawn in a row (from the current state of the sequence)."""
        return [self.index(t) for _ in range(count)]


@dataclass
class Uniform(KeyDistribution):
    """Every key alike."""

    def index(self, t: float = 0.0) -> int:
        """A key uniformly at random."""
        return self.rng.randrange(self.n)

    def popularity(self, t: float = 0.0) -> list[float]:
        """``1/n`` each."""
        return [1.0 / self.n] * self.n


@dataclass
class Zipf(KeyDistribution):
    """Key ``i`` with probability proportional to ``1/(i+1)**alpha``."""

    alpha: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ScaleLabError(f"--alpha {self.alpha}: give 0 or more (1.0 is classic Zipf)")
        self.weights = zipf_weights(self.n, self.alpha)
        self.cumulative = list(itertools.accumulate(self.weights))
        self.cumulative[-1] = 1.0

    def index(self, t: float = 0.0) -> int:
        """Inverse-CDF draw of a rank (0-based)."""
        return min(bisect.bisect_right(self.cumulative, self.rng.random()), self.n - 1)

    def popularity(self, t: float = 0.0) -> list[float]:
        """The Zipf probabilities, most popular first."""
        return list(self.weights)


@dataclass
class Hotspot(KeyDistribution):
    """A share ``hot_share`` of requests to the first ``hot_keys`` fraction of the keys."""

    hot_keys: float = 0.1
    hot_share: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.hot_keys <= 1:
            raise ScaleLabError(f"--hot-keys {self.hot_keys}: give a fraction in (0, 1]")
        if not 0 <= self.hot_share <= 1:
            raise ScaleLabError(f"--hot-share {self.hot_share}: give a fraction in [0, 1]")
        self.hot = max(1, min(self.n, round(self.n * self.hot_keys)))

    def index(self, t: float = 0.0) -> int:
        """A hot key with probability ``hot_share``, else a cold one."""
        cold = self.n - self.hot
        if cold == 0 or self.rng.random() < self.hot_share:
            return self.rng.randrange(self.hot)
        return self.hot + self.rng.randrange(cold)

    def popularity(self, t: float = 0.0) -> list[float]:
        """Hot keys share ``hot_share``, cold keys the rest."""
        cold = self.n - self.hot
        if cold == 0:
            return [1.0 / self.n] * self.n
        return [self.hot_share / self.hot] * self.hot + [(1 - self.hot_share) / cold] * cold


@dataclass
class Scan(KeyDistribution):
    """Keys in turn, ``0..n-1``, again and again, from an offset that the seed sets."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.position = self.rng.randrange(self.n)

    def index(self, t: float = 0.0) -> int:
        """The next key of the scan."""
        i = self.position
        self.position = (i + 1) % self.n
        return i

    def popularity(self, t: float = 0.0) -> list[float]:
        """In the long run each key gets ``1/n`` of requests."""
        return [1.0 / self.n] * self.n


@dataclass
class Shifting(Zipf):
    """Zipf whose hot set moves ``shift_keys`` keys every ``shift_every_s`` seconds."""

    shift_every_s: float = 10.0
    shift_keys: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.shift_every_s > 0:
            raise ScaleLabError(f"--shift-every-s {self.shift_every_s}: give seconds above 0")
        if self.shift_keys <= 0:
            # By default the hot set moves past the most popular tenth of the keys.
            self.shift_keys = max(1, self.n // 10)

    def offset(self, t: float) -> int:
        """How far the ranking has moved at ``t``."""
        return (int(max(t, 0.0) // self.shift_every_s) * self.shift_keys) % self.n

    def index(self, t: float = 0.0) -> int:
        """A Zipf rank, moved by the offset of ``t``."""
        return (super().index(t) + self.offset(t)) % self.n

    def popularity(self, t: float = 0.0) -> list[float]:
        """The Zipf probabilities as they stand at ``t``."""
        base = self.weights
        shift = self.offset(t)
        return [base[(i - shift) % self.n] for i in range(self.n)]


def make_distribution(
    name: str,
    n: int,
    *,
    seed: int = 0,
    alpha: float = 1.0,
    hot_keys: float = 0.1,
    hot_share: float = 0.9,
    shift_every_s: float = 10.0,
    shift_keys: int = 0,
) -> KeyDistribution:
    """The distribution ``name`` over ``n`` keys, seeded."""
    if name == "uniform":
        return Uniform(n, seed)
    if name == "zipf":
        return Zipf(n, seed, alpha)
    if name == "hotspot":
        return Hotspot(n, seed, hot_keys, hot_share)
    if name == "scan":
        return Scan(n, seed)
    if name == "shifting":
        return Shifting(n, seed, alpha, shift_every_s, shift_keys)
    raise ScaleLabError(f"--dist {name!r}: use one of {', '.join(DISTRIBUTIONS)}")


KNOB_DEFAULTS: dict[str, Any] = {
    "keys": 1000,
    "dist": "zipf",
    "alpha": 1.0,
    "hot_keys": 0.1,
    "hot_share": 0.9,
    "shift_every_s": 10.0,
    "shift_keys": 0,
}
"""The scenario knobs that choose a key distribution, with their defaults."""


def distribution_from_spec(scenario: Mapping[str, Any], seed: int = 0) -> KeyDistribution:
    """The distribution a spec's ``[scenario]`` table (or Locust's options) describes.

    Knob names may use ``_`` or ``-`` (``hot_keys`` or ``hot-keys``); missing
    ones take :data:`KNOB_DEFAULTS`.
    """
    knobs = {k.replace("-", "_"): v for k, v in scenario.items()}
    v = {name: knobs.get(name, default) for name, default in KNOB_DEFAULTS.items()}
    try:
        return make_distribution(
            str(v["dist"]),
            int(v["keys"]),
            seed=int(seed),
            alpha=float(v["alpha"]),
            hot_keys=float(v["hot_keys"]),
            hot_share=float(v["hot_share"]),
            shift_every_s=float(v["shift_every_s"]),
            shift_keys=int(v["shift_keys"]),
        )
    except (TypeError, ValueError) as exc:
        raise ScaleLabError(f"key distribution knobs {dict(scenario)}: {exc}") from None


def add_key_arguments(parser: Any) -> None:
    """Add the key-distribution knobs to Locust's parser (``--keys``, ``--dist``, ...)."""
    parser.add_argument("--keys", type=int, default=KNOB_DEFAULTS["keys"], help="Keys in play")
    parser.add_argument(
        "--dist", choices=DISTRIBUTIONS, default=KNOB_DEFAULTS["dist"], help="Key distribution"
    )
    parser.add_argument(
        "--alpha", type=float, default=KNOB_DEFAULTS["alpha"], help="zipf/shifting: exponent"
    )
    parser.add_argument(
        "--hot-keys",
        type=float,
        default=KNOB_DEFAULTS["hot_keys"],
        help="hotspot: fraction of keys that are hot",
    )
    parser.add_argument(
        "--hot-share",
        type=float,
        default=KNOB_DEFAULTS["hot_share"],
        help="hotspot: fraction of requests to the hot keys",
    )
    parser.add_argument(
        "--shift-every-s",
        type=float,
        default=KNOB_DEFAULTS["shift_every_s"],
        help="shifting: seconds between moves of the hot set",
    )
    parser.add_argument(
        "--shift-keys",
        type=int,
        default=KNOB_DEFAULTS["shift_keys"],
        help="shifting: keys the hot set moves by (0: a tenth of the keys)",
    )


def stream(
    dist: KeyDistribution, count: int, times: Sequence[float] | None = None
) -> Iterator[str]:
    """``count`` key names from ``dist`` (at the given times, for time-varying ones)."""
    for i in range(count):
        yield dist.key(times[i] if times is not None else 0.0)
