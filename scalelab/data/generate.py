"""A seeded generator of the lab's tables: ``orders`` and a small ``customers`` table.

The same :class:`~scalelab.data.config.DatasetSpec` always gives the same
tables. Orders are spread over customers by a key distribution of
:mod:`scalelab.loadgen.keys` (``uniform``, ``zipf``: customer 0 the most
frequent, ``hotspot``), so data skew is chosen like request skew.
``order_id`` counts orders in time order, so it is correlated with ``ts``: a
range of order ids is a range of times, which is what lets a range partition
by ``order_id`` prune a scan over ``ts``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from scalelab.data.config import DatasetSpec
from scalelab.data.schema import COUNTRIES, REGIONS, SEGMENTS, TS_START
from scalelab.loadgen.keys import make_distribution

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def customer_weights(spec: DatasetSpec) -> np.ndarray:
    """The probability of each customer id for one order, from the spec's skew."""
    dist = make_distribution(
        spec.skew,
        spec.customers,
        seed=spec.seed,
        alpha=spec.alpha,
        hot_keys=spec.hot_keys,
        hot_share=spec.hot_share,
    )
    weights = np.asarray(dist.popularity(), dtype=float)
    return weights / weights.sum()


def _strings(rng: np.random.Generator, rows: int, width: int) -> pa.Array:
    """``rows`` random hex strings of ``width`` characters, built without Python objects."""
    chars = _HEX[rng.integers(0, 16, size=rows * width, dtype=np.uint8)]
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(
        rows, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())
    ).cast(pa.string())


def generate_orders(spec: DatasetSpec) -> pd.DataFrame:
    """The orders table: ``spec.rows`` rows in ``order_id`` (and ``ts``) order."""
    rng = np.random.default_rng([spec.seed, 1])
    rows = spec.rows
    customer_id = rng.choice(spec.customers, size=rows, p=customer_weights(spec))
    span = spec.days * 86_400
    ts = np.sort(rng.integers(TS_START, TS_START + span, size=rows, dtype=np.int64))
    region = np.asarray(REGIONS)[rng.integers(0, len(REGIONS), size=rows)]
    amount = np.round(rng.lognormal(3.5, 1.0, size=rows), 2)
    return pd.DataFrame(
        {
            "order_id": np.arange(rows, dtype=np.int64),
            "customer_id": customer_id.astype(np.int64),
            "region": pd.array(region, dtype="str"),
            "ts": ts,
            "amount": amount,
            "payload": pd.array(_strings(rng, rows, spec.payload_bytes), dtype="str"),
        }
    )


def generate_customers(spec: DatasetSpec) -> pd.DataFrame:
    """The customers table: one row per customer id ``0 .. customers - 1``."""
    rng = np.random.default_rng([spec.seed, 2])
    n = spec.customers
    ids = np.arange(n, dtype=np.int64)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "name": pd.array([f"customer-{i}" for i in range(n)], dtype="str"),
            "segment": pd.array(np.asarray(SEGMENTS)[rng.integers(0, 3, n)], dtype="str"),
            "country": pd.array(
                np.asarray(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)], dtype="str"
            ),
        }
    )
