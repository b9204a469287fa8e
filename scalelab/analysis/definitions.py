"""What a run's figures count: a request sent, a dropped one, a keyed read, a hit, an origin call.

``summary.json`` (:mod:`scalelab.experiment.summary`), the analysis frames and
the report all count through these functions, so that a figure means the same
wherever it is printed; docs/results-format.md states each definition.

- A request was **sent** unless its ``method`` is :data:`DROPPED_METHOD`: the
  open loop writes that row for an arrival due while its cap on requests in
  flight was reached. A dropped request has no latency; it is neither a request
  nor an error of the service, and is counted apart (``dropped``).
- A **read** is a ``GET`` answered with an ``X-Cache`` header (``PUT /kv``
  answers carry one too, but they are writes).
- The **hit ratio** is the share of reads answered ``hit``; the **served
  ratio** the share answered ``hit`` or ``coalesced``: reads that started no
  computation of their own, which is what a cache read one request at a time
  (Che's approximation of LRU) calls a hit.
- **Origin calls** in a window are the increase of the service's counter
  between the scrapes that bracket the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from scalelab.loadgen.records import DROPPED_METHOD

__all__ = [
    "DROPPED_METHOD",
    "HIT_ANSWERS",
    "ORIGIN_CALLS_METRIC",
    "READ_METHOD",
    "SERVED_ANSWERS",
    "answer_share",
    "counter_increase",
    "read_mask",
    "sent_mask",
]

READ_METHOD = "GET"
"""The method of a read: a ``GET`` answered with ``X-Cache``."""

HIT_ANSWERS: tuple[str, ...] = ("hit",)
"""``X-Cache`` answers that count as hits (``cache_hit_ratio``)."""

SERVED_ANSWERS: tuple[str, ...] = ("hit", "coalesced")
"""``X-Cache`` answers of reads that started no computation (``cache_served_ratio``)."""

ORIGIN_CALLS_METRIC = "scalelab_cache_origin_calls_total"
"""The service's counter of computations of the keyed workload."""


def _text(values: Any) -> np.ndarray:
    """Strings as an object array, with missing values (None, NaN, pandas' NA) as ``""``."""
    if hasattr(values, "fillna"):  # a pandas Series
        return np.asarray(values.fillna("").astype(str), dtype=object)
    return np.array([v if isinstance(v, str) else "" for v in values], dtype=object)


def sent_mask(methods: Iterable[Any]) -> np.ndarray:
    """True for each row of a request that was sent (False for the open loop's drops)."""
    return np.asarray(_text(methods) != DROPPED_METHOD, dtype=bool)


def read_mask(methods: Iterable[Any], caches: Iterable[Any]) -> np.ndarray:
    """True for each row of a read: a ``GET`` answered with an ``X-Cache`` header."""
    return np.asarray((_text(methods) == READ_METHOD) & (_text(caches) != ""), dtype=bool)


def answer_share(caches: Iterable[Any], answers: Sequence[str]) -> float:
    """The share of ``caches`` (the ``X-Cache`` of reads) that is one of ``answers``.

    NaN without any read.
    """
    values = _text(caches)
    if len(values) == 0:
        return math.nan
    return float(np.isin(values, list(answers)).mean())


def counter_increase(
    times: Iterable[float], values: Iterable[float], start: float, end: float
) -> float:
    """How much a counter grew over ``[start, end]``, from its scrapes.

    From the last scrape at or before ``start`` (the first scrape when none is
    that early) to the first scrape at or after ``end`` (the last scrape when
    none is that late): the window read is the smallest run of scrapes that
    covers ``[start, end]``. NaN without any scrape.
    """
    t = np.asarray(list(times), dtype=float)
    v = np.asarray(list(values), dtype=float)
    if t.size == 0:
        return math.nan
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    first = int(np.searchsorted(t, start, side="right")) - 1
    last = int(np.searchsorted(t, end, side="left"))
    return float(v[min(last, t.size - 1)] - v[max(first, 0)])
