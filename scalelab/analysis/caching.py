"""What a cache bought and what it cost: hit ratios, latency by answer, origin load, staleness.

Reads the keyed requests of runs (``requests.parquet``: ``cache`` is the
``X-Cache`` header, ``stale_ms`` the ``X-Stale-Ms`` one) and the service's cache
counters (``metrics.parquet``), and predicts the LRU hit ratio with Che's
approximation:

    a cache of C entries under independent requests with key probabilities
    p_i behaves as if each key stayed for a characteristic time T_C after its
    last request, where T_C solves  sum_i (1 - exp(-p_i T_C)) = C;  the hit
    ratio is then  sum_i p_i (1 - exp(-p_i T_C)).

(H. Che, Y. Tung, Z. Wang, "Hierarchical Web caching systems: modeling,
design and experimental results", IEEE JSAC 20(7), 2002; C. Fricker, P.
Robert, J. Roberts, "A versatile and accurate approximation for LRU cache
performance", ITC 2012.)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from scalelab.analysis.definitions import (
    HIT_ANSWERS,
    ORIGIN_CALLS_METRIC,
    SERVED_ANSWERS,
    answer_share,
    counter_increase,
    read_mask,
)
from scalelab.analysis.frames import load_start
from scalelab.analysis.load import Experiment, Run, histogram_of
from scalelab.analysis.percentiles import hist_percentiles_ms, percentile_column
from scalelab.errors import ScaleLabError
from scalelab.loadgen.keys import KeyDistribution, distribution_from_spec, zipf_weights

ANSWERS: tuple[str, ...] = ("hit", "stale", "coalesced", "miss")
"""The values of ``X-Cache``, fastest first."""


# --- Che's approximation ------------------------------------------------------------------


def zipf_popularity(n: int, alpha: float) -> np.ndarray:
    """Probabilities of ``n`` keys under Zipf(``alpha``), most popular first."""
    return np.asarray(zipf_weights(n, alpha), dtype=float)


def _popularity(popularity: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(popularity, dtype=float)
    if p.ndim != 1 or p.size == 0 or np.any(p < 0) or not np.isfinite(p).all():
        raise ScaleLabError("popularity: give a non-empty sequence of probabilities >= 0")
    total = p.sum()
    if total <= 0:
        raise ScaleLabError("popularity: the probabilities sum to 0")
    return p / total


def che_characteristic_time(popularity: Sequence[float] | np.ndarray, capacity: float) -> float:
    """T_C: the time (in requests) for which an LRU cache of ``capacity`` keeps a key.

    Solves ``sum_i (1 - exp(-p_i T)) = capacity`` with Brent's method.
    Infinite when the cache holds every key that is ever asked for.
    """
    p = _popularity(popularity)
    asked = int(np.count_nonzero(p))
    if capacity <= 0:
        return 0.0
    if capacity >= asked:
        return math.inf

    def occupancy(t: float) -> float:
        return float(np.sum(-np.expm1(-p * t))) - capacity

    high = 1.0
    while occupancy(high) < 0:
        high *= 2.0
    return float(brentq(occupancy, 0.0, high, xtol=1e-10, rtol=1e-12, maxiter=500))


def che_hit_ratio(popularity: Sequence[float] | np.ndarray, capacity: float) -> float:
    """Che's approximation of the hit ratio of an LRU cache of ``capacity`` entries."""
    p = _popularity(popularity)
    t = che_characteristic_time(p, capacity)
    if math.isinf(t):
        return 1.0
    return float(np.sum(p * -np.expm1(-p * t)))


def che_zipf_hit_ratio(capacity: float, n: int, alpha: float) -> float:
    """Che's LRU hit ratio for ``n`` keys under Zipf(``alpha``)."""
    return che_hit_ratio(zipf_popularity(n, alpha), capacity)


# --- simulation ---------------------------------------------------------------------------


def simulate_lru(keys: Iterable[Hashable], capacity: int, warmup: int = 0) -> float:
    """The hit ratio of an LRU cache of ``capacity`` over a key sequence (after ``warmup`` keys)."""
    cache: OrderedDict[Hashable, None] = OrderedDict()
    hits = total = 0
    for i, key in enumerate(keys):
        hit = key in cache
        if hit:
            cache.move_to_end(key)
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
        if i >= warmup:
            total += 1
            hits += hit
    return hits / total if total else math.nan


def simulate_cache(cache: Any, keys: Iterable[Hashable], warmup: int = 0) -> float:
    """The hit ratio of any mapping-like cache (a ``cachetools`` cache, a
    :class:`~scalelab.service.cache_policies.PolicyCache`) over a key sequence."""
    hits = total = 0
    for i, key in enumerate(keys):
        try:
            cache[key]
            hit = True
        except KeyError:
            cache[key] = True
            hit = False
        if i >= warmup:
            total += 1
            hits += hit
    return hits / total if total else math.nan


def key_sequence(distribution: KeyDistribution, count: int) -> list[int]:
    """``count`` key indices drawn in a row from a (seeded) distribution."""
    return distribution.sample(count)


# --- runs ---------------------------------------------------------------------------------


def _runs(source: Run | Experiment | Iterable[Run]) -> list[Run]:
    if isinstance(source, Run):
        return [source]
    if isinstance(source, Experiment):
        return list(source.runs)
    return list(source)


def keyed_reads(run: Run, measured: bool = True) -> pd.DataFrame:
    """The run's reads: ``GET`` requests answered with an ``X-Cache`` header.

    ``PUT /kv`` answers carry the header too, but are writes. ``measured`` leaves
    out the warm-up, as ``summary.json`` does.
    """
    req = run.measured_requests if measured else run.sent_requests
    if req.empty:
        return req
    return req.loc[read_mask(req["method"], req["cache"])]


def hit_ratio(run: Run, count_coalesced: bool = False, measured: bool = True) -> float:
    """Share of reads answered ``hit`` (NaN without any): summary.json's ``cache_hit_ratio``.

    ``stale`` answers are not hits. With ``count_coalesced`` it is
    :func:`served_ratio` instead.
    """
    answers = SERVED_ANSWERS if count_coalesced else HIT_ANSWERS
    return answer_share(keyed_reads(run, measured)["cache"], answers)


def served_ratio(run: Run, measured: bool = True) -> float:
    """Share of reads answered ``hit`` or ``coalesced``: summary.json's ``cache_served_ratio``.

    A coalesced read waited for a computation already in flight, so it started
    none of its own; a cache read one request at a time (like the LRU of Che's
    approximation) would have answered it from the entry the first one stored.
    This is the figure to compare with :func:`predicted_hit_ratio`.
    """
    return hit_ratio(run, count_coalesced=True, measured=measured)


def answer_counts(run: Run, measured: bool = True) -> dict[str, int]:
    """Keyed reads by answer: ``hit``, ``stale``, ``coalesced``, ``miss``."""
    counts = keyed_reads(run, measured)["cache"].value_counts()
    return {a: int(counts.get(a, 0)) for a in ANSWERS}


def hit_ratio_over_time(run: Run, bin_s: float = 1.0) -> pd.DataFrame:
    """Per time bin (by completion, from the first request): reads by answer and the hit ratio."""
    reads = keyed_reads(run, measured=False)
    t0 = load_start(run)
    columns = ["t", "reads", *ANSWERS, "hit_ratio"]
    if reads.empty or t0 is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    end = reads["start"].to_numpy(float) + reads["latency_us"].to_numpy(float) / 1e6
    idx = np.maximum(np.floor((end - t0) / bin_s).astype(np.int64), 0)
    nbins = int(idx.max()) + 1
    frame = pd.DataFrame({"t": np.arange(nbins, dtype=float) * bin_s})
    frame["reads"] = np.bincount(idx, minlength=nbins)
    answers = reads["cache"].to_numpy()
    for a in ANSWERS:
        frame[a] = np.bincount(idx, weights=(answers == a).astype(float), minlength=nbins).astype(
            np.int64
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["hit_ratio"] = np.where(frame["reads"] > 0, frame["hit"] / frame["reads"], np.nan)
    frame.attrs["t0"] = t0
    frame.attrs["run_id"] = run.run_id
    return frame


def latency_by_answer(
    source: Run | Experiment | Iterable[Run], points: Sequence[float] = (50, 90, 99)
) -> pd.DataFrame:
    """Latency percentiles (ms, from HDR histograms) of keyed reads by answer, per run."""
    rows: list[dict[str, Any]] = []
    for run in _runs(source):
        reads = keyed_reads(run)
        for answer in ANSWERS:
            lat = reads.loc[reads["cache"] == answer, "latency_intended_us"].to_numpy()
            row: dict[str, Any] = {"run_id": run.run_id, **run.params, "answer": answer}
            row["requests"] = int(lat.size)
            pct = (
                hist_percentiles_ms(histogram_of(lat), points)
                if lat.size
                else [math.nan] * len(points)
            )
            for q, v in zip(points, pct, strict=True):
                row[percentile_column(q)] = float(v)
            rows.append(row)
    return pd.DataFrame(rows)


def metric_series(run: Run, metric: str, labels: str | None = None) -> pd.DataFrame:
    """A service metric over time: ``t`` (s from the first request) and ``value``, summed over
    labels unless ``labels`` (``k=v,...``) picks one series."""
    m = run.metrics
    if m.empty:
        return pd.DataFrame({"t": pd.Series(dtype=float), "value": pd.Series(dtype=float)})
    sel = m.loc[(m["source"] == "service") & (m["metric"] == metric)]
    if labels is not None:
        sel = sel.loc[sel["labels"] == labels]
    series = pd.DataFrame(sel.groupby("t", as_index=False)["value"].sum()).sort_values("t")
    t0 = load_start(run) or (float(series["t"].min()) if len(series) else 0.0)
    series["t"] = series["t"] - t0
    return series.reset_index(drop=True)


def origin_calls_per_second(run: Run) -> pd.DataFrame:
    """Computations at the origin (Dask) per second, from the service's counter."""
    series = metric_series(run, "scalelab_cache_origin_calls_total")
    if len(series) < 2:
        return pd.DataFrame({"t": pd.Series(dtype=float), "calls_per_s": pd.Series(dtype=float)})
    dt = series["t"].diff()
    rate = series["value"].diff().clip(lower=0) / dt
    out = pd.DataFrame({"t": series["t"], "calls_per_s": rate}).iloc[1:]
    return out.reset_index(drop=True)


def origin_calls(run: Run, measured: bool = True) -> float:
    """Computations at the origin over the run's measured window: summary.json's ``origin_calls``.

    The window is that of the hit ratio: from the end of the warm-up (or the
    first request's intended start) to the last response. The service's counter
    is read at the scrapes that bracket it (see
    :func:`~scalelab.analysis.definitions.counter_increase`); ``measured=False``
    takes the whole run, from the first scrape to the last. NaN without scrapes.
    """
    m = run.metrics
    sel = m.loc[(m["source"] == "service") & (m["metric"] == ORIGIN_CALLS_METRIC)]
    if sel.empty:
        return math.nan
    per_scrape = sel.groupby("t")["value"].sum()
    times = per_scrape.index.to_numpy(dtype=float)
    if not measured:
        return counter_increase(times, per_scrape.to_numpy(), -math.inf, math.inf)
    req = run.measured_requests
    if req.empty:
        return math.nan
    start = run.measure_from
    if start is None:
        start = float(req["intended_start"].min())
    end = float((req["start"] + req["latency_us"] / 1e6).max())
    return counter_increase(times, per_scrape.to_numpy(), start, end)


@dataclass(frozen=True)
class Staleness:
    """Stale reads of a run: how many, what share, and how long ago they were superseded."""

    reads: int
    stale_reads: int
    share: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def staleness(run: Run, measured: bool = True) -> Staleness:
    """Reads that served a superseded version (``X-Stale-Ms`` > 0), and how stale."""
    reads = keyed_reads(run, measured)
    if reads.empty or "stale_ms" not in reads:
        return Staleness(0, 0, math.nan, math.nan, math.nan, math.nan, math.nan)
    stale = reads["stale_ms"].astype(float).fillna(0.0).to_numpy()
    late = stale[stale > 0]
    if late.size == 0:
        return Staleness(int(stale.size), 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p50, p99 = np.percentile(late, [50, 99])
    return Staleness(
        int(stale.size),
        int(late.size),
        float(late.size / stale.size),
        float(late.mean()),
        float(p50),
        float(p99),
        float(late.max()),
    )


def _spec_value(run: Run, dotted: str, default: Any = None) -> Any:
    node: Any = run.spec
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def run_distribution(run: Run) -> KeyDistribution:
    """The key distribution a run of ``scenarios/caching.py`` used, from its spec."""
    scenario = _spec_value(run, "scenario", {}) or {}
    return distribution_from_spec(scenario, seed=int(_spec_value(run, "seed", 0) or 0))


INDEPENDENT: tuple[str, ...] = ("uniform", "zipf", "hotspot")
"""Distributions whose requests are independent draws, as Che's approximation assumes."""


def predicted_hit_ratio(run: Run) -> float:
    """Che's LRU hit ratio for the run's key distribution and ``service.cache.size``.

    NaN for a scan or a shifting hot set, whose requests are not independent
    draws from fixed probabilities (a scan longer than the cache gives LRU no hits).
    """
    size = _spec_value(run, "service.cache.size")
    if size is None:
        raise ScaleLabError(f"{run.path}: its spec has no service.cache.size")
    dist = run_distribution(run)
    if str(_spec_value(run, "scenario.dist", "zipf")) not in INDEPENDENT:
        return math.nan
    return che_hit_ratio(dist.popularity(), float(size))


def caching_table(source: Experiment | Iterable[Run]) -> pd.DataFrame:
    """One row per run: its swept parameters (dotted names), the cache and key settings of
    its spec (``policy``, ``size``, ``ttl_s``, ``strategy``, ``tier``, ``coalesce``,
    ``keys``, ``dist``, ``alpha``, ``write_ratio``), ``hit_ratio`` and ``served_ratio``
    (hits and coalesced reads), Che's prediction for LRU, reads by answer, origin
    calls (all three over the measured window, as summary.json), staleness, and the
    run's latency figures."""
    rows: list[dict[str, Any]] = []
    for run in _runs(source):
        row: dict[str, Any] = {"run_id": run.run_id, "status": run.status, **run.params}
        for key in ("policy", "size", "ttl_s", "strategy", "tier", "coalesce"):
            row[key] = _spec_value(run, f"service.cache.{key}")
        for key in ("keys", "dist", "alpha", "write_ratio"):
            row[key] = _spec_value(run, f"scenario.{key}")
        row["hit_ratio"] = hit_ratio(run)
        row["served_ratio"] = served_ratio(run)
        try:
            row["che_lru_hit_ratio"] = predicted_hit_ratio(run)
        except ScaleLabError:
            row["che_lru_hit_ratio"] = math.nan
        row.update(answer_counts(run))
        row["origin_calls"] = origin_calls(run)
        st = staleness(run)
        row["stale_share"] = st.share
        row["stale_p99_ms"] = st.p99_ms
        for key in ("throughput_rps", "p50_ms", "p99_ms", "error_rate"):
            row[key] = run.summary.get(key, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def hit_ratio_curve(
    sizes: Sequence[float], popularity: Sequence[float] | np.ndarray
) -> pd.DataFrame:
    """Che's LRU hit ratio at each cache size, for plotting against measured points."""
    return pd.DataFrame(
        {"size": list(sizes), "che_lru_hit_ratio": [che_hit_ratio(popularity, s) for s in sizes]}
    )


def simulate_policy(
    make: Callable[[int], Any], keys: Sequence[Hashable], capacity: int, warmup: int = 0
) -> float:
    """Hit ratio of the cache ``make(capacity)`` over ``keys`` (see :func:`simulate_cache`)."""
    return simulate_cache(make(capacity), keys, warmup)
